/*
 * cli_text.c — text from the API made safe to print on a terminal, and
 * how many columns it takes there.
 *
 * Why: names, projects, attributes and alarm texts come from agents and
 * tenants. A newline or tab in a libvirt domain name would break a table
 * into extra lines, and "ESC ] 0 ; ... BEL" or "ESC [ 31 m" would be obeyed
 * by the operator's terminal (retitle it, recolour it, worse with some
 * emulators). Every string the CLI prints for people goes through
 * vg_cli_safe (tables do it for every cell); --json output is left exact,
 * since the JSON encoder already escapes control characters.
 *
 * Rendering, byte by byte over UTF-8:
 *   - valid UTF-8 is kept as it is (accents, CJK, emoji), except
 *   - C0 controls and DEL: "\n", "\t", "\r", else "\xHH" ("\x1b" for ESC);
 *   - C1 controls (U+0080..U+009F, which some terminals obey like ESC
 *     sequences), the line and paragraph separators U+2028/U+2029 and the
 *     bidirectional overrides and isolates (U+202A..U+202E,
 *     U+2066..U+2069, which reorder what follows them on screen):
 *     "\uHHHH";
 *   - a byte that is not part of valid UTF-8 (overlong, surrogate, beyond
 *     U+10FFFF, truncated): "\xHH".
 * A backslash itself is not doubled: the rendering is for people, and
 * names with backslashes stay readable; --json is the exact form.
 *
 * Width: wide East Asian characters take two columns, combining marks and
 * zero-width characters none, everything else one (a fixed table after
 * Markus Kuhn's wcwidth, so it does not depend on the locale).
 *
 * Invariants: the output of vg_cli_safe holds no byte below 0x20, no DEL,
 * no C1 control and only valid UTF-8, so a rendered cell is one line.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "query/cli/cli.h"

/* Decode the UTF-8 character at s (n bytes left): its length (1..4) and
 * code point in *cp, or 0 if the bytes there are not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c;
	size_t len;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if (s[0] >= 0xC2 && s[0] <= 0xDF) {
		len = 2;
		c = s[0] & 0x1F;
	} else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		len = 3;
		c = s[0] & 0x0F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		len = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0; /* overlong, beyond Unicode, or a surrogate */
	*cp = c;
	return len;
}

/* Whether code point c is shown as an escape rather than itself. */
static int escaped(uint32_t c)
{
	return c < 0x20 || (c >= 0x7F && c <= 0x9F) || c == 0x2028 ||
	       c == 0x2029 || (c >= 0x202A && c <= 0x202E) ||
	       (c >= 0x2066 && c <= 0x2069);
}

char *vg_cli_safe(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n, o = 0;
	char *out;

	if (!s)
		return NULL;
	n = strlen(s);
	/* at most 6 bytes of output per byte of input ("\u0085" for 2) */
	if (!(out = malloc(6 * n + 1)))
		return NULL;
	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t len = utf8_decode(p + i, n - i, &c);

		if (!len) {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", p[i]);
			i++;
			continue;
		}
		if (!escaped(c)) {
			memcpy(out + o, p + i, len);
			o += len;
		} else if (c == '\n' || c == '\t' || c == '\r') {
			out[o++] = '\\';
			out[o++] = c == '\n' ? 'n' : c == '\t' ? 't'
							       : 'r';
		} else if (c < 0x80) {
			o += (size_t)snprintf(out + o, 5, "\\x%02x", (unsigned)c);
		} else {
			o += (size_t)snprintf(out + o, 7, "\\u%04x", (unsigned)c);
		}
		i += len;
	}
	out[o] = '\0';
	return out;
}

void vg_cli_put_safe(FILE *f, const char *s)
{
	char *t = vg_cli_safe(s);

	if (t)
		fputs(t, f);
	else if (s) /* out of memory: drop what cannot be shown safely */
		for (; *s; s++)
			fputc((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7F
				      ? '?'
				      : *s,
			      f);
	free(t);
}

void vg_cli_line(FILE *f, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n >= 0)
		vg_cli_put_safe(f, s);
	fputc('\n', f);
	free(n >= 0 ? s : NULL);
}

void vg_cli_put_document(FILE *f, const char *s, size_t len)
{
	if (!isatty(fileno(f))) {
		fwrite(s, 1, len, f);
		return;
	}
	/* line by line, each rendered safe; the line ends stay */
	while (len) {
		const char *nl = memchr(s, '\n', len);
		size_t l = nl ? (size_t)(nl - s) : len;
		char *line = strndup(s, l);

		vg_cli_put_safe(f, line ? line : "");
		free(line);
		if (nl)
			fputc('\n', f);
		s += l + (nl != NULL);
		len -= l + (nl != NULL);
	}
}

/* Sorted, inclusive ranges of code points. */
struct range {
	uint32_t lo, hi;
};

static int in(const struct range *r, size_t n, uint32_t c)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c > r[mid].hi)
			lo = mid + 1;
		else if (c < r[mid].lo)
			hi = mid;
		else
			return 1;
	}
	return 0;
}

/* Combining and zero-width characters (the main blocks). */
static const struct range zero[] = {
	{0x0300, 0x036F},
	{0x0483, 0x0489},
	{0x0591, 0x05BD},
	{0x05BF, 0x05BF},
	{0x05C1, 0x05C2},
	{0x05C4, 0x05C5},
	{0x05C7, 0x05C7},
	{0x0610, 0x061A},
	{0x064B, 0x065F},
	{0x0670, 0x0670},
	{0x06D6, 0x06DC},
	{0x06DF, 0x06E4},
	{0x06E7, 0x06E8},
	{0x06EA, 0x06ED},
	{0x0900, 0x0902},
	{0x093A, 0x093A},
	{0x093C, 0x093C},
	{0x0941, 0x0948},
	{0x094D, 0x094D},
	{0x0951, 0x0957},
	{0x0E31, 0x0E31},
	{0x0E34, 0x0E3A},
	{0x0E47, 0x0E4E},
	{0x1AB0, 0x1AFF},
	{0x1DC0, 0x1DFF},
	{0x200B, 0x200F},
	{0x20D0, 0x20FF},
	{0x302A, 0x302D},
	{0x3099, 0x309A},
	{0xFE00, 0xFE0F},
	{0xFE20, 0xFE2F},
	{0xFEFF, 0xFEFF},
	{0xE0100, 0xE01EF},
};

/* Wide (two-column) characters: East Asian Wide and Fullwidth, emoji. */
static const struct range wide[] = {
	{0x1100, 0x115F},
	{0x231A, 0x231B},
	{0x2329, 0x232A},
	{0x23E9, 0x23EC},
	{0x23F0, 0x23F0},
	{0x23F3, 0x23F3},
	{0x25FD, 0x25FE},
	{0x2614, 0x2615},
	{0x2648, 0x2653},
	{0x267F, 0x267F},
	{0x2693, 0x2693},
	{0x26A1, 0x26A1},
	{0x26AA, 0x26AB},
	{0x26BD, 0x26BE},
	{0x26C4, 0x26C5},
	{0x26CE, 0x26CE},
	{0x26D4, 0x26D4},
	{0x26EA, 0x26EA},
	{0x26F2, 0x26F3},
	{0x26F5, 0x26F5},
	{0x26FA, 0x26FA},
	{0x26FD, 0x26FD},
	{0x2705, 0x2705},
	{0x270A, 0x270B},
	{0x2728, 0x2728},
	{0x274C, 0x274C},
	{0x274E, 0x274E},
	{0x2753, 0x2755},
	{0x2757, 0x2757},
	{0x2795, 0x2797},
	{0x27B0, 0x27B0},
	{0x27BF, 0x27BF},
	{0x2B1B, 0x2B1C},
	{0x2B50, 0x2B50},
	{0x2B55, 0x2B55},
	{0x2E80, 0x303E},
	{0x3041, 0x3247},
	{0x3250, 0x4DBF},
	{0x4E00, 0xA4CF},
	{0xA960, 0xA97F},
	{0xAC00, 0xD7A3},
	{0xF900, 0xFAFF},
	{0xFE10, 0xFE19},
	{0xFE30, 0xFE6F},
	{0xFF00, 0xFF60},
	{0xFFE0, 0xFFE6},
	{0x16FE0, 0x16FE4},
	{0x17000, 0x18CFF},
	{0x1B000, 0x1B2FF},
	{0x1F004, 0x1F004},
	{0x1F0CF, 0x1F0CF},
	{0x1F18E, 0x1F18E},
	{0x1F191, 0x1F19A},
	{0x1F200, 0x1F251},
	{0x1F300, 0x1F64F},
	{0x1F680, 0x1F6FF},
	{0x1F7E0, 0x1F7EB},
	{0x1F90C, 0x1F9FF},
	{0x1FA70, 0x1FAFF},
	{0x20000, 0x2FFFD},
	{0x30000, 0x3FFFD},
};

size_t vg_cli_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = s ? strlen(s) : 0, w = 0;

	for (size_t i = 0; i < n;) {
		uint32_t c;
		size_t len = utf8_decode(p + i, n - i, &c);

		if (!len) { /* not UTF-8: vg_cli_safe shows it as \xHH */
			w += 4;
			i++;
			continue;
		}
		i += len;
		if (in(zero, sizeof(zero) / sizeof(zero[0]), c))
			continue;
		w += in(wide, sizeof(wide) / sizeof(wide[0]), c) ? 2 : 1;
	}
	return w;
}
