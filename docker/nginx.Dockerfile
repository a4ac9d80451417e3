# nginx in front of the convscope replicas (docker/compose.yaml), from the same Debian 12
# image the service's image starts from: Debian's own nginx, no other registry. Build
# from the docker/ folder (compose does):
#
#   docker build -f docker/nginx.Dockerfile -t convscope-nginx docker
#
# The configuration is not in the image: compose mounts docker/nginx.conf read-only at
# /etc/nginx/nginx.conf, and the container runs with a read-only root and tmpfs for
# /tmp (where that configuration keeps its pid file and temporary files).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
# nginx-light: the core modules (proxy, upstream with zone, least_conn and keepalive, map)
# and none of the optional ones. Logs go to the container's output, as docker logs
# expects.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends nginx-light \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
           /usr/share/doc/* /usr/share/man/* /etc/nginx/sites-enabled/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
EXPOSE 8080
# SIGQUIT: finish the requests in progress, then stop.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
