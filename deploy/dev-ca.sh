#!/usr/bin/env bash
# Development CA and certificates for `gridhub serve` (TLS and mTLS). Not for production:
# a real deployment uses the organisation's CA; deploy/README.md shows the same commands.
#
#   deploy/dev-ca.sh OUT_DIR [--host NAME]... [PRINCIPAL_ID]...
#
# Writes into OUT_DIR (created if missing), with the openssl CLI (OpenSSL 3):
#   ca.key  ca.crt            the CA: EC P-256, 10 years, CA:TRUE, keyCertSign+cRLSign.
#                             Reused when already present, so principals can be added later.
#   hub.key hub.crt           the server certificate: SAN DNS:localhost, IP:127.0.0.1 and
#                             every --host (IP when it is an IPv4/IPv6 address, else DNS),
#                             extendedKeyUsage serverAuth.
#   <id>.key <id>.crt         one client certificate per PRINCIPAL_ID: Subject CN=<id> (the
#                             hub's principal id), extendedKeyUsage clientAuth.
# Keys are PKCS#8 PEM, mode 600. Leaf files are overwritten (new key) on every run.
set -euo pipefail

CA_DAYS=3650
LEAF_DAYS=825
CA_SUBJECT="/O=gridhub/CN=gridhub development CA"

usage() {
    echo "usage: $0 OUT_DIR [--host NAME]... [PRINCIPAL_ID]..." >&2
    echo "  (what it writes: see the header of $0)" >&2
    exit 2
}
die() {
    echo "dev-ca.sh: $*" >&2
    exit 1
}

out=""
hosts=()
principals=()
while [ $# -gt 0 ]; do
    case "$1" in
    --host)
        [ $# -ge 2 ] || die "--host needs a NAME"
        hosts+=("$2")
        shift 2
        ;;
    --host=*)
        hosts+=("${1#--host=}")
        shift
        ;;
    -h | --help) usage ;;
    -*) die "unknown option '$1'" ;;
    *)
        if [ -z "$out" ]; then out="$1"; else principals+=("$1"); fi
        shift
        ;;
    esac
done
[ -n "$out" ] || usage
command -v openssl >/dev/null || die "openssl not found"

is_ipv4() {
    local IFS=. o
    local -a parts
    [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]] || return 1
    read -ra parts <<<"$1"
    for o in "${parts[@]}"; do
        [ $((10#$o)) -le 255 ] || return 1
    done
}

# Subject alternative names of the server certificate.
san="DNS:localhost,IP:127.0.0.1"
for h in ${hosts[@]+"${hosts[@]}"}; do
    if [ "$h" = localhost ] || [ "$h" = 127.0.0.1 ]; then
        continue
    elif is_ipv4 "$h"; then
        san+=",IP:$h"
    elif [[ "$h" == *:* && "$h" =~ ^[0-9A-Fa-f:.]+$ ]]; then
        san+=",IP:$h"
    elif [[ "$h" =~ ^[0-9.]+$ ]]; then
        die "--host '$h' is not a valid IPv4 address"
    elif [[ "$h" =~ ^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$ ]]; then
        san+=",DNS:$h"
    else
        die "--host '$h' is neither an IP address nor a DNS name"
    fi
done
server_cn="${hosts[0]:-localhost}"

# Principal ids become the Subject CN and file names.
for p in ${principals[@]+"${principals[@]}"}; do
    [[ "$p" =~ ^[A-Za-z0-9][A-Za-z0-9._@-]*$ ]] ||
        die "principal id '$p': use letters, digits and . _ @ - (first a letter or digit)"
    case "$p" in ca | hub) die "principal id '$p' would overwrite $p.key/$p.crt" ;; esac
done

mkdir -p "$out"
umask 077
tmp="$(mktemp -d "$out/.dev-ca.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# `-config /dev/null`: only the extensions given here, whatever the system openssl.cnf says.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
serial() { echo "0x$(openssl rand -hex 16)"; }

# 1. The CA: reused when present.
if [ -f "$out/ca.key" ] && [ -f "$out/ca.crt" ]; then
    [ "$(openssl pkey -in "$out/ca.key" -pubout)" = "$(openssl x509 -in "$out/ca.crt" -noout -pubkey)" ] ||
        die "$out/ca.key does not match $out/ca.crt"
    echo "reusing CA $out/ca.crt ($(openssl x509 -in "$out/ca.crt" -noout -subject -enddate | paste -sd' '))"
elif [ -e "$out/ca.key" ] || [ -e "$out/ca.crt" ]; then
    die "$out has only one of ca.key and ca.crt; remove it or restore the other"
else
    newkey "$tmp/ca.key"
    openssl req -x509 -new -config /dev/null -key "$tmp/ca.key" -sha256 -days "$CA_DAYS" \
        -set_serial "$(serial)" -subj "$CA_SUBJECT" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash" \
        -out "$tmp/ca.crt"
    chmod 600 "$tmp/ca.key"
    chmod 644 "$tmp/ca.crt"
    mv "$tmp/ca.key" "$out/ca.key"
    mv "$tmp/ca.crt" "$out/ca.crt"
    echo "wrote $out/ca.key $out/ca.crt  (development CA, $CA_DAYS days)"
fi

# 2. Leaf certificates signed by the CA: leaf NAME SUBJECT EXTENSIONS
leaf() {
    local name="$1" subject="$2" ext="$3"
    newkey "$tmp/$name.key"
    openssl req -new -config /dev/null -key "$tmp/$name.key" -subj "$subject" -out "$tmp/$name.csr"
    printf '%s\n' "$ext" \
        "subjectKeyIdentifier = hash" \
        "authorityKeyIdentifier = keyid:always" >"$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" \
        -set_serial "$(serial)" -days "$LEAF_DAYS" -sha256 -extfile "$tmp/$name.ext" \
        -out "$tmp/$name.crt" 2>"$tmp/$name.log" || { cat "$tmp/$name.log" >&2; die "signing $name.crt failed"; }
    openssl verify -CAfile "$out/ca.crt" "$tmp/$name.crt" >/dev/null ||
        die "$name.crt does not verify against $out/ca.crt"
    chmod 600 "$tmp/$name.key"
    chmod 644 "$tmp/$name.crt"
    mv -f "$tmp/$name.key" "$out/$name.key"
    mv -f "$tmp/$name.crt" "$out/$name.crt"
}

leaf hub "/CN=$server_cn" "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san"
echo "wrote $out/hub.key $out/hub.crt  (server, $LEAF_DAYS days; subjectAltName ${san//,/, })"

for p in ${principals[@]+"${principals[@]}"}; do
    leaf "$p" "/CN=$p" "basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth"
    echo "wrote $out/$p.key $out/$p.crt  (client, CN=$p, $LEAF_DAYS days)"
done
