# One image for every sayna-sip service: `sayna-sip <service>` (see compose.yaml).
# The build stage installs the workspace packages (non-editable) into a venv; the final
# stage copies only that venv onto a slim Python and runs as an unprivileged user.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/sayna-sip
WORKDIR /src
COPY libs/common libs/common
COPY services services
COPY cli cli
RUN /opt/sayna-sip/bin/pip install \
        ./libs/common ./services/ingress ./services/router \
        ./services/forwarder ./services/provisioner ./cli

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sayna \
    && mkdir -p /etc/sayna-sip \
    && touch /etc/sayna-sip/config.yaml
COPY --from=build /opt/sayna-sip /opt/sayna-sip
ENV PATH=/opt/sayna-sip/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001
# ingress (webhooks, hooks API), router and forwarder health/metrics
EXPOSE 3001 3002 3003
ENTRYPOINT ["sayna-sip"]
CMD ["--help"]
