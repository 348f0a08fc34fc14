#!/bin/bash
# The container image's HEALTHCHECK: GET /healthz on the broker's own port
# through bash's /dev/tcp (the runtime image has no curl). Exit 0 on HTTP 200.
set -u
port=${WSB_PORT:-8080}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' >&3
read -r -t 2 _ status _ <&3 || exit 1
[ "$status" = 200 ]
