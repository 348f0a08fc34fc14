# Redis for docker-compose.yml, from the same base as the broker image
# (Debian's redis-server). The brokers use it for pub/sub only: nothing is
# persisted. Any Redis >= 5 image works instead (e.g. the official one).
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*
EXPOSE 6379
USER redis
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", \
     "--appendonly", "no", "--dir", "/tmp"]
