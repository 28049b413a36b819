# smaps_groups.awk — /proc/PID/smaps summed per library group: resident KiB,
# of which file pages (shared with the page cache, droppable) and anonymous
# (private copies: relocations, .data/.bss, heap). Used by
# scripts/bench-monitors.sh (footprint step). Prints "group rss file anon".
function group(p) {
    if (p == "") return "[anonymous]"
    if (p ~ /vigil-agent/) return "vigil-agent"
    if (p ~ /\[heap\]/) return "[heap]"
    if (p ~ /^\[/) return "[stack, vdso]"
    if (p ~ /libcurl/) return "libcurl"
    if (p ~ /libssl|libcrypto/) return "openssl (libssl, libcrypto)"
    if (p ~ /libgnutls|libnettle|libhogweed|libgmp|libtasn1|libp11-kit|libffi/) return "gnutls (nettle, hogweed, gmp, tasn1, p11-kit, ffi)"
    if (p ~ /libnghttp2/) return "libnghttp2"
    if (p ~ /libidn2|libpsl|libunistring/) return "idn2, psl, unistring"
    if (p ~ /libssh2/) return "libssh2"
    if (p ~ /librtmp/) return "librtmp"
    if (p ~ /libldap|liblber|libsasl2/) return "ldap, lber, sasl2"
    if (p ~ /libkrb5|libgssapi|libk5crypto|libcom_err|libkeyutils/) return "kerberos (krb5, gssapi, k5crypto, keyutils)"
    if (p ~ /libz\.|libzstd|libbrotli/) return "zlib, zstd, brotli"
    if (p ~ /libnss_|libresolv/) return "glibc NSS, libresolv"
    if (p ~ /libc\.so|ld-linux|libm\.so|libdl|libpthread|librt\./) return "glibc (libc, ld.so, libm)"
    return "other: " p
}
/^[0-9a-f]+-[0-9a-f]+ / { g = group($6); seen[g] = 1; next }
/^Rss:/ { r[g] += $2 }
/^Anonymous:/ { a[g] += $2 }
END { for (k in seen) if (r[k] > 0) printf "%s\t%d\t%d\t%d\n", k, r[k], r[k] - a[k], a[k] }
