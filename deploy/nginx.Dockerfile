# nginx for docker-compose.yml, from the same base as the broker image
# (Debian's nginx package); the configuration is mounted from deploy/nginx.conf.
# Any nginx image works instead (e.g. the official one) with that file mounted.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/* /usr/share/doc/* /usr/share/man/*
EXPOSE 8080
# SIGQUIT: finish open requests, then exit (WebSockets are cut, the clients reconnect).
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
