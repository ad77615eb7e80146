/*
 * name.c — the name sanitiser: wire names -> safe, injective path parts.
 *
 * See include/vigie/name.h for the rule. Escaping rather than rejecting or
 * replacing keeps every legitimate name (a NIC called "tap+1", a host
 * "node@rack") storable and distinct; escaping '%' itself is what makes
 * the mapping injective.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "vigie/name.h"

static int plain(unsigned char c, int first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '_' || c == '-')
		return 1;
	return c == '.' && !first;
}

int vg_name_escape(const char *name, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = name ? strlen(name) : 0, o = 0;

	if (len == 0 || len > VG_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (plain(c, i == 0)) {
			if (o + 1 >= outlen)
				return -ENAMETOOLONG;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outlen)
				return -ENAMETOOLONG;
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	if (o >= outlen)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return (int)o;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

int vg_name_unescape(const char *esc, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = esc; *p; p++) {
		int c = (unsigned char)*p;
		if (c == '%') {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
			if (hi < 0 || lo < 0)
				return -EINVAL;
			c = hi << 4 | lo;
			p += 2;
		}
		if (o + 1 >= outlen)
			return -ENAMETOOLONG;
		out[o++] = (char)c;
	}
	if (!outlen)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return (int)o;
}

/* Length of the valid UTF-8 character without control characters at p
 * (1..4), or 0. Shortest form only, no surrogates, nothing over
 * U+10FFFF; C0, DEL and C1 (U+0080..U+009F, "\xC2\x80".."\xC2\x9F") are
 * refused because a terminal acts on them. */
static int utf8_char(const unsigned char *p)
{
	unsigned char c = p[0];

	if (c < 0x20 || c == 0x7f)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		if ((p[1] & 0xc0) != 0x80 || (c == 0xc2 && p[1] < 0xa0))
			return 0;
		return 2;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] >= 0xa0))
			return 0;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80 || (c == 0xf0 && p[1] < 0x90) ||
		    (c == 0xf4 && p[1] >= 0x90))
			return 0;
		return 4;
	}
	return 0;
}

int vg_char_hidden(uint32_t cp)
{
	return cp == 0x00ad ||                   /* soft hyphen */
	       cp == 0x061c ||                   /* Arabic letter mark */
	       cp == 0x180e ||                   /* Mongolian vowel separator */
	       (cp >= 0x200b && cp <= 0x200f) || /* zero widths, LRM, RLM */
	       (cp >= 0x202a && cp <= 0x202e) || /* LRE RLE PDF LRO RLO */
	       (cp >= 0x2060 && cp <= 0x2064) || /* word joiner, invisible ops */
	       (cp >= 0x2066 && cp <= 0x206f) || /* LRI RLI FSI PDI, deprecated */
	       cp == 0xfeff ||                   /* zero width no-break space */
	       (cp >= 0xfff9 && cp <= 0xfffb) || /* interlinear annotation */
	       (cp >= 0xe0000 && cp <= 0xe007f); /* tags */
}

/* The code point of the n-byte character utf8_char accepted at p. */
static uint32_t code_point(const unsigned char *p, int n)
{
	static const unsigned char lead_mask[5] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	uint32_t cp = p[0] & lead_mask[n];

	for (int i = 1; i < n; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	return cp;
}

/* Length of the character at p if the character rule allows it (1..4),
 * 0 if not. *len (may be NULL) gets the length of the whole character
 * when it is valid UTF-8 that the rule refuses (a hidden character), so
 * that vg_text_clean replaces it by one '?'. */
static int text_char(const unsigned char *p, int *len)
{
	int n = utf8_char(p);

	if (len)
		*len = n ? n : 1;
	if (n > 1 && vg_char_hidden(code_point(p, n)))
		return 0;
	return n;
}

int vg_text_valid(const char *text, size_t maxlen)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t len = text ? strlen(text) : 0;

	if (len == 0 || (maxlen && len > maxlen))
		return 0;
	while (*p) {
		int n = text_char(p, NULL); /* stops at the NUL: no continuation */
		if (!n)
			return 0;
		p += n;
	}
	return 1;
}

size_t vg_text_clean(const char *text, char *out, size_t max)
{
	const unsigned char *p = (const unsigned char *)(text ? text : "");
	size_t o = 0;

	while (*p) {
		int len, n = text_char(p, &len);
		if (o + (size_t)(n ? n : 1) > max)
			break;
		if (n) {
			memcpy(out + o, p, (size_t)n);
			o += (size_t)n;
		} else {
			out[o++] = '?';
		}
		p += len;
	}
	out[o] = '\0';
	return o;
}

size_t vg_utf8_prefix(const char *s, size_t max)
{
	size_t n;

	if (!s)
		return 0;
	n = strnlen(s, max);
	if (s[n]) /* cut: back off the continuation bytes of a cut character */
		while (n && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	return n;
}

int vg_name_valid(const char *name)
{
	return vg_text_valid(name, VG_NAME_MAX);
}

static int blank_cp(uint32_t cp)
{
	return cp == 0x20 || cp == 0xa0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200a) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202f || cp == 0x205f ||
	       cp == 0x3000 || cp == 0x115f || cp == 0x1160 || cp == 0x2800 ||
	       cp == 0x3164 || cp == 0xffa0;
}

int vg_name_blank_end(const char *name)
{
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	uint32_t cp = 0;
	int first = 1;

	while (*p) {
		int n = utf8_char(p);
		if (!n)
			return 0;
		cp = code_point(p, n);
		if (first && blank_cp(cp))
			return 1;
		first = 0;
		p += n;
	}
	return !first && blank_cp(cp);
}

size_t vg_name_trim_blank(const char *name, const char **start)
{
	const unsigned char *p = (const unsigned char *)(name ? name : "");
	const unsigned char *first = NULL, *end = p;

	while (*p) {
		int n = utf8_char(p);
		if (!n) /* not UTF-8: left as it is from here */
			n = 1;
		else if (blank_cp(code_point(p, n))) {
			p += n;
			continue;
		}
		if (!first)
			first = p;
		p += n;
		end = p;
	}
	*start = first ? (const char *)first : (name ? name : "");
	return first ? (size_t)(end - first) : 0;
}

int vg_project_name_valid(const char *name)
{
	return vg_name_valid(name) && !vg_name_blank_end(name);
}

int vg_name_component(const char *name, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	char esc[3 * VG_NAME_MAX + 1];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n, keep;

	if (!vg_name_valid(name))
		return -EINVAL;
	n = vg_name_escape(name, esc, sizeof(esc));
	if (n < 0)
		return n;
	if (n <= VG_NAME_COMPONENT_MAX) {
		if ((size_t)n >= outlen)
			return -ENAMETOOLONG;
		memcpy(out, esc, (size_t)n + 1);
		return n;
	}
	if (outlen < VG_NAME_COMPONENT_MAX + 1)
		return -ENAMETOOLONG;
	if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen * 2 != VG_NAME_HASH_HEX)
		return -EIO;
	keep = VG_NAME_COMPONENT_MAX - 1 - VG_NAME_HASH_HEX;
	/* never cut an escape in two: "%4" would read as another byte */
	if (esc[keep - 1] == '%')
		keep -= 1;
	else if (esc[keep - 2] == '%')
		keep -= 2;
	memcpy(out, esc, (size_t)keep);
	out[keep] = '~';
	for (unsigned int i = 0; i < mdlen; i++) {
		out[keep + 1 + 2 * i] = hex[md[i] >> 4];
		out[keep + 2 + 2 * i] = hex[md[i] & 15];
	}
	n = keep + 1 + VG_NAME_HASH_HEX;
	out[n] = '\0';
	return n;
}
