/*
 * parse.c: the small text parsers the probes share (numbers, "key value" lines), locale-free and
 * overflow-checked because their input is whatever the kernel, or a broken fixture, wrote.
 * No I/O here and no meaning: which keys matter is each source's business.
 */
#include <ctype.h>
#include <string.h>

#include "probe/probe.h"

bool hr_parse_u64(const char *text, const char **end, uint64_t *value)
{
    const char *cursor = text;
    uint64_t number = 0;
    if (!isdigit((unsigned char)*cursor)) return false;
    while (isdigit((unsigned char)*cursor)) {
        uint64_t digit = (uint64_t)(*cursor - '0');
        if (number > (UINT64_MAX - digit) / 10) return false;
        number = number * 10 + digit;
        cursor++;
    }
    *value = number;
    if (end) *end = cursor;
    return true;
}

bool hr_parse_decimal(const char *text, const char **end, double *value)
{
    const char *cursor = text;
    if (!isdigit((unsigned char)*cursor)) return false;
    double number = 0.0;
    while (isdigit((unsigned char)*cursor)) number = number * 10.0 + (*cursor++ - '0');
    if (*cursor == '.') {
        cursor++;
        double scale = 0.1;
        while (isdigit((unsigned char)*cursor)) {
            number += (*cursor++ - '0') * scale;
            scale /= 10.0;
        }
    }
    *value = number;
    if (end) *end = cursor;
    return true;
}

int hr_scan_key_line(const char *line, hr_key_u64 *keys, int n_keys)
{
    /* isspace() takes '\n' as a space, so a line inside a larger text ends the key and the
     * number; spaces and tabs alone separate them, so "Key:\n123" is not "Key: 123" */
    const char *key_end = line;
    while (*key_end && !isspace((unsigned char)*key_end)) key_end++;
    size_t key_length = (size_t)(key_end - line);
    if (key_length == 0) return 0;
    for (int i = 0; i < n_keys; i++) {
        if (keys[i].found || strncmp(keys[i].key, line, key_length) != 0 ||
            keys[i].key[key_length] != '\0')
            continue;
        const char *cursor = key_end;
        while (*cursor == ' ' || *cursor == '\t') cursor++;
        const char *number_end;
        uint64_t value;
        if (!hr_parse_u64(cursor, &number_end, &value)) return 0;
        /* "123abc" is not a number; "123 kB" and "123" are */
        if (*number_end && !isspace((unsigned char)*number_end)) return 0;
        *keys[i].value = value;
        keys[i].found = true;
        return 1;
    }
    return 0;
}

int hr_scan_keys(const char *text, hr_key_u64 *keys, int n_keys)
{
    /* hr_scan_key_line stops at the first '\n' (a space to it), so lines need no copying */
    int found = 0;
    const char *cursor = text;
    while (*cursor && found < n_keys) {
        found += hr_scan_key_line(cursor, keys, n_keys);
        const char *newline = strchr(cursor, '\n');
        if (!newline) break;
        cursor = newline + 1;
    }
    return found;
}
