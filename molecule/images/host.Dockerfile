# A systemd "host" for Molecule: the role under test installs Docker inside it. The apt lists
# stay, as on a real host, so check mode can resolve packages before the first converge.
ARG AGENTFLEET_BASE_IMAGE
FROM ${AGENTFLEET_BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive container=docker
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      systemd systemd-sysv dbus python3 python3-apt ca-certificates \
      iproute2 procps util-linux gnupg sudo \
 && apt-get clean \
 && rm -f /etc/machine-id /var/lib/dbus/machine-id \
 && touch /etc/machine-id \
 && systemctl mask getty.target console-getty.service systemd-firstboot.service \
      systemd-logind.service
COPY netns-sysctl.service /etc/systemd/system/
RUN systemctl enable netns-sysctl.service
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
