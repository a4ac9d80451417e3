/*
 * bombs.h - small files that cost a decoder far more than their size, made by the test
 * itself (zlib, libjpeg) rather than kept in the tree: a PNG whose IDAT stream inflates
 * to about a gigabyte after the image's last row, and a progressive JPEG with hundreds
 * of scans. Every function returns a malloc'd buffer and its length, or exits 99.
 */
#ifndef CS_TEST_BOMBS_H
#define CS_TEST_BOMBS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <zlib.h>

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bomb_buf;

static inline void bomb_put(bomb_buf *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            fprintf(stderr, "setup: out of memory making a bomb\n");
            exit(99);
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static inline void bomb_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static inline void png_chunk(bomb_buf *b, const char *type, const uint8_t *data, size_t n)
{
    uint8_t head[8];
    bomb_be32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    bomb_put(b, head, 8);
    if (n) bomb_put(b, data, n);
    uLong crc = crc32(0, (const Bytef *)type, 4);
    if (n) crc = crc32(crc, data, (uInt)n); /* crc32(crc, NULL, 0) is 0, not crc */
    uint8_t c[4];
    bomb_be32(c, (uint32_t)crc);
    bomb_put(b, c, 4);
}

static inline void bomb_deflate(z_stream *z, const uint8_t *in, size_t n, int flush, bomb_buf *out)
{
    uint8_t buf[1 << 16];
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    do {
        z->next_out = buf;
        z->avail_out = sizeof buf;
        deflate(z, flush);
        bomb_put(out, buf, sizeof buf - z->avail_out);
    } while (z->avail_out == 0 || z->avail_in);
}

/*
 * A w x h 8-bit gray PNG whose one zlib stream holds the image's rows (mid-gray) and
 * then zeros, `extra_mib` MiB of them: a stream that inflates to that much more than
 * the image. A full flush after the rows and after each MiB of zeros makes every MiB
 * deflate to the same bytes (the flush forgets the history), so one is deflated and
 * repeated, with the stream's Adler-32 combined to match. The deflated data goes out in
 * IDAT chunks of `chunk` bytes: one chunk for the whole stream, or small ones, so that
 * the rows end in the first chunk and a thousand follow it.
 */
static inline uint8_t *png_bomb(int w, int h, size_t extra_mib, size_t chunk, size_t *len)
{
    bomb_buf out = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    bomb_put(&out, sig, 8);
    uint8_t ihdr[13] = {0};
    bomb_be32(ihdr, (uint32_t)w);
    bomb_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8; /* bit depth; colour type 0 (gray), no interlace */
    png_chunk(&out, "IHDR", ihdr, sizeof ihdr);

    size_t row = (size_t)w + 1, rows_len = row * (size_t)h;
    uint8_t *rows = calloc(1, rows_len), *zeros = calloc(1, 1 << 20);
    if (!rows || !zeros) exit(99);
    for (size_t i = 0; i < rows_len; i++) rows[i] = i % row ? 128 : 0; /* filter byte 0, then pixels */
    z_stream z = {0};
    bomb_buf idat = {0}, mib = {0};
    if (deflateInit2(&z, 9, Z_DEFLATED, 15, 9, Z_RLE) != Z_OK) exit(99);
    bomb_deflate(&z, rows, rows_len, Z_FULL_FLUSH, &idat);
    uLong adler = adler32(adler32(0, NULL, 0), rows, (uInt)rows_len);
    uLong adler_mib = adler32(adler32(0, NULL, 0), zeros, 1 << 20);
    if (extra_mib) bomb_deflate(&z, zeros, 1 << 20, Z_FULL_FLUSH, &mib);
    for (size_t i = 0; i < extra_mib; i++) {
        bomb_put(&idat, mib.p, mib.len);
        adler = adler32_combine(adler, adler_mib, 1 << 20);
    }
    deflateEnd(&z);
    /* An empty final stored block, then the Adler-32 of everything inflated. */
    static const uint8_t last[5] = {0x01, 0x00, 0x00, 0xff, 0xff};
    bomb_put(&idat, last, sizeof last);
    uint8_t a[4];
    bomb_be32(a, (uint32_t)adler);
    bomb_put(&idat, a, 4);
    for (size_t at = 0; at < idat.len; at += chunk)
        png_chunk(&out, "IDAT", idat.p + at, idat.len - at < chunk ? idat.len - at : chunk);
    png_chunk(&out, "IEND", NULL, 0);
    free(rows);
    free(zeros);
    free(idat.p);
    free(mib.p);
    *len = out.len;
    return out.p;
}

/* A w x h 8-bit gray PNG of one colour: deflates about 1000:1, so the largest image
 * --max-pixels allows is a few kilobytes of upload for tens of megabytes decoded. */
static inline uint8_t *png_flat(int w, int h, size_t *len)
{
    return png_bomb(w, h, 0, 1 << 20, len);
}

/*
 * A w x h progressive JPEG of one colour, three components at full resolution (4:4:4),
 * with the most scans the standard's successive approximation allows: for each
 * component, the DC coefficient and then each of the 63 AC coefficients in a band of
 * its own, each sent at point transform 10 and refined one bit at a time down to 0
 * (11 scans a band): 2,112 scans, each walking every block of its component again,
 * while a flat picture codes a scan in a few bytes (end-of-band runs) or one bit a
 * block (DC refinement). A valid progression: decoders that refuse bogus ones take it.
 * *scans tells how many.
 */
static inline uint8_t *jpeg_scan_bomb(int w, int h, int *scans, size_t *len)
{
    enum { AL = 10, COMPS = 3 };
    static jpeg_scan_info script[COMPS * 64 * (AL + 1)];
    int n = 0;
    for (int comp = 0; comp < COMPS; comp++)
        for (int k = 0; k < 64; k++)
            for (int al = AL; al >= 0; al--) {
                jpeg_scan_info *s = &script[n++];
                memset(s, 0, sizeof *s);
                s->comps_in_scan = 1;
                s->component_index[0] = comp;
                s->Ss = s->Se = k;
                s->Ah = al == AL ? 0 : al + 1;
                s->Al = al;
            }
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long mem_len = 0;
    jpeg_mem_dest(&c, &mem, &mem_len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = COMPS;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    for (int i = 0; i < COMPS; i++) c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
    c.scan_info = script;
    c.num_scans = n;
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * COMPS);
    if (!row) exit(99);
    for (int x = 0; x < w; x++) row[x * 3] = 200, row[x * 3 + 1] = 120, row[x * 3 + 2] = 40;
    JSAMPROW rp = row;
    while (c.next_scanline < c.image_height) jpeg_write_scanlines(&c, &rp, 1);
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    uint8_t *p = malloc(mem_len);
    if (!p) exit(99);
    memcpy(p, mem, mem_len);
    free(mem);
    *scans = n;
    *len = mem_len;
    return p;
}

#endif
