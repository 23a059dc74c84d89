# Multi-stage build of jellyfin-sso-proxy (docs/deployment.md).
#   docker build -t jellyfin-sso-proxy .
#   docker run -p 443:8443 -v jsp:/data jellyfin-sso-proxy
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin jellyfin-sso-proxy

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin jsp \
 && mkdir -p /data && chown jsp:jsp /data
COPY --from=build /src/target/release/jellyfin-sso-proxy /usr/local/bin/jellyfin-sso-proxy
COPY proxy.yaml /etc/jellyfin-sso-proxy/proxy.yaml
# One volume for configuration overrides, certificates and state.
VOLUME ["/data"]
WORKDIR /data
USER jsp
ENV JSP_STATE_DIR=/data/state \
    JSP_TLS__CERT=/data/certs/cert.pem \
    JSP_TLS__KEY=/data/certs/key.pem
EXPOSE 8443
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
  CMD curl -fsk https://127.0.0.1:8443/sso/health >/dev/null || exit 1
ENTRYPOINT ["/usr/local/bin/jellyfin-sso-proxy", "--config", "/etc/jellyfin-sso-proxy/proxy.yaml"]
