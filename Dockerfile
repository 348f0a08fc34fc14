# wsbroker container image: a multi-stage build on debian:bookworm-slim.
#
#   docker build -t wsbroker .
#   docker run --rm -p 127.0.0.1:8080:8080 wsbroker          # http://127.0.0.1:8080/
#
# Configuration: every setting is a WSB_* environment variable (README,
# "Configuration"); a JSON config file can be mounted and named with
# WSB_CONFIG, e.g. -v $PWD/wsbroker.json:/etc/wsbroker/wsbroker.json:ro
# -e WSB_CONFIG=/etc/wsbroker/wsbroker.json (variables still override it).
# docs/deploy.md covers compose, nginx, TLS and scaling.

# ---- build stage: compilers and -dev packages, thrown away afterwards ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libuv1-dev libssl-dev libjansson-dev libhiredis-dev zlib1g-dev \
      node-llhttp \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Tests and the load generator are not part of the image; llhttp's C sources
# (node-llhttp) are compiled into the binary.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DWSB_BUILD_BENCH=OFF -DWSB_WERROR=OFF \
 && cmake --build /build -j"$(nproc)" --target wsbroker \
 && strip /build/broker/wsbroker \
 && mkdir -p /out/web/js \
 && cp -r web/index.html web/app.js web/style.css /out/web/ \
 && cp clients/js/wsbroker.js /out/web/js/wsbroker.js

# ---- runtime stage: the binary, its shared libraries, the demo page ----
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libjansson4 libhiredis0.14 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /usr/share/doc/* /usr/share/man/* \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin wsbroker
COPY --from=build /build/broker/wsbroker /usr/local/bin/wsbroker
COPY --from=build /out/web /usr/share/wsbroker/web
COPY deploy/healthcheck.sh /usr/local/bin/wsbroker-healthcheck

# Listen on every interface of the container (the default, 127.0.0.1, would
# be unreachable from outside it); the demo page is the web root.
ENV WSB_HOST=0.0.0.0 \
    WSB_PORT=8080 \
    WSB_WEB_ROOT=/usr/share/wsbroker/web
# 8080: HTTP + WebSocket. With WSB_TLS_CERT/WSB_TLS_KEY also 8443 (wss://);
# with WSB_RESP_PORT a RESP listener (set WSB_RESP_HOST=0.0.0.0 to expose it).
EXPOSE 8080 8443

USER wsbroker
# GET /healthz over bash's /dev/tcp: no curl in the image. 200 means serving
# (also while Redis is away: "degraded", local clients still served); 503
# means a worker is stuck, and the container turns unhealthy.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/wsbroker-healthcheck"]
# SIGTERM: stop accepting, close 1001 to every WebSocket, flush for up to
# shutdown_timeout (5 s; keep docker's stop timeout above it), exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/wsbroker"]
