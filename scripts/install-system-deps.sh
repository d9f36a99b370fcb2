#!/usr/bin/env bash
# Install the system tools capdebug's tests drive for real: tcpdump, tshark (and editcap,
# capinfos), openssl, GnuTLS's gnutls-cli/serv, curl, OpenSSH server and client, iproute2;
# for the key-log tests gcc, libssl-dev (libssl.a), golang-go, nodejs, wget, postgresql-client;
# for the correlation topologies nftables and haproxy (the middlebox), nginx for HTTP triage;
# for the upgrade tests postgresql, dovecot (IMAP, POP3), exim4 (SMTP), tinyproxy (HTTP CONNECT)
# and slapd with ldap-utils (LDAP StartTLS; the tests run slapd with their own configuration,
# so debconf's default directory is never used), mariadb-server and mariadb-client (MySQL's
# CLIENT_SSL; the tests run mariadbd on a throwaway datadir, never the package's service).
# Runs apt-get as root; otherwise says what to install and fails.
set -euo pipefail
need=()
check() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }
check tcpdump tcpdump
check tshark tshark
check editcap wireshark-common
check openssl openssl
check gnutls-cli gnutls-bin
check curl curl
check sshd openssh-server
check ssh openssh-client
check ip iproute2
check nft nftables
check haproxy haproxy
check nginx nginx
check ethtool ethtool
check sudo sudo
check setpriv util-linux
check chromium chromium
check chromedriver chromium-driver
# Key-log tests (issue 18): real programs for the doctor, `capdebug run` and the shim.
check gcc gcc
check go golang-go
check node nodejs
check wget wget
check psql postgresql-client
# Upgrade tests (issue 12): real servers speaking STARTTLS and its relatives.
[ -n "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ] || need+=(postgresql)
[ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd dovecot-pop3d)
[ -x /usr/sbin/exim4 ] || need+=(exim4-daemon-light)
check tinyproxy tinyproxy
[ -x /usr/sbin/slapd ] || need+=(slapd)
check ldapsearch ldap-utils
[ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)
check mariadb mariadb-client
[ -f /usr/include/openssl/ssl.h ] && [ -n "$(ls /usr/lib/*/libssl.a 2>/dev/null)" ] || need+=(libssl-dev)
[ -n "$(ls /usr/lib/postgresql/*/bin/psql 2>/dev/null)" ] || need+=(postgresql-client)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
# de-duplicate
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "capdebug tests need: ${need[*]}. Install them (e.g. sudo apt-get install ${need[*]}) and run again." >&2
  exit 1
fi
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
