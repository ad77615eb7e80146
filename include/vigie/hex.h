/*
 * vigie — hexadecimal digits, decoded in one place (key files in
 * common/sign.c, %XX escapes in query/http.c).
 */
#ifndef VIGIE_HEX_H
#define VIGIE_HEX_H

/* Value 0-15 of the hex digit c (either case), or -1 for anything else.
 * Pass characters as unsigned char values (or EOF-free ints). */
static inline int vg_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

#endif
