"""Mutation testing of the modules where one wrong line hurts most (`make mutants`)."""
