/*
 * test_image.c - decoding (good photos and every kind of bad upload), PNG
 * encoding, colour conversion and the resize filters of core/image.c.
 * Run from the project root: the photos are read from tests/data/photos/.
 */
#include <png.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <zlib.h>

#include <jpeglib.h>

#include "image.h"
#include "test.h"

#define PHOTOS "tests/data/photos/"

static int decode(const void *buf, size_t len, size_t max_pixels, cs_image *img)
{
    char err[256] = "";
    int rc = cs_image_decode(buf, len, max_pixels, img, err, sizeof err);
    if (rc != CS_IMG_OK && err[0] == 0)
        rc = -100; /* every failure must say why */
    if (rc != CS_IMG_OK && (img->px || img->w || img->h))
        rc = -200; /* and leave the output empty */
    return rc;
}

static void check_photo(const char *name, int w, int h, int c)
{
    char path[256];
    snprintf(path, sizeof path, PHOTOS "%s", name);
    size_t len = 0;
    uint8_t *buf = test_read_file(path, &len);
    CHECK(buf != NULL, "cannot read %s (run from the project root)", path);
    if (!buf)
        return;
    cs_image img;
    int rc = decode(buf, len, 0, &img);
    CHECK(rc == CS_IMG_OK, "%s: rc %d", name, rc);
    CHECK(img.w == w && img.h == h && img.c == c, "%s: %dx%dx%d", name, img.w, img.h, img.c);
    if (rc == CS_IMG_OK) {
        /* a real photo is not one flat colour (a padded decode would be) */
        int lo = 255, hi = 0;
        for (size_t i = 0; i < (size_t)w * h * c; i++) {
            lo = img.px[i] < lo ? img.px[i] : lo;
            hi = img.px[i] > hi ? img.px[i] : hi;
        }
        CHECK(hi - lo > 100, "%s: range %d..%d", name, lo, hi);
    }
    cs_image_free(&img);
    free(buf);
}

static void test_decode_photos(void)
{
    check_photo("astronaut.png", 512, 512, 3);
    check_photo("chelsea.png", 451, 300, 3);
    check_photo("coffee.png", 600, 400, 3);
    check_photo("rocket.jpg", 640, 427, 3);
}

static void test_truncated_jpeg_is_corrupt(void)
{
    size_t len = 0;
    uint8_t *buf = test_read_file(PHOTOS "truncated.jpg", &len);
    CHECK(buf != NULL, "cannot read truncated.jpg");
    if (!buf)
        return;
    cs_image img;
    int rc = decode(buf, len, 0, &img);
    CHECK(rc == CS_IMG_CORRUPT, "truncated.jpg: rc %d", rc);
    free(buf);

    /* rocket.jpg cut at many points: never accepted, never a crash */
    buf = test_read_file(PHOTOS "rocket.jpg", &len);
    if (!buf)
        return;
    size_t cuts[] = {3, 4, 20, 100, 300, 600, 2000, 20000, len / 2, len - 100, len - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        rc = decode(buf, cuts[i], 0, &img);
        CHECK(rc == CS_IMG_CORRUPT, "rocket.jpg cut at %zu: rc %d", cuts[i], rc);
        cs_image_free(&img);
    }
    free(buf);
}

static void test_not_images(void)
{
    cs_image img;
    const char *text = "hello, this is plain text and not an image at all\n";
    CHECK(decode(text, strlen(text), 0, &img) == CS_IMG_NOT_IMAGE, "text");
    CHECK(decode("", 0, 0, &img) == CS_IMG_NOT_IMAGE, "zero bytes");
    CHECK(decode(NULL, 0, 0, &img) == CS_IMG_NOT_IMAGE, "NULL");
    const uint8_t gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00;";
    CHECK(decode(gif, sizeof gif - 1, 0, &img) == CS_IMG_NOT_IMAGE, "GIF");
    const uint8_t one[] = {0x89};
    CHECK(decode(one, 1, 0, &img) == CS_IMG_NOT_IMAGE, "one byte");
    CHECK(strcmp(cs_image_status_name(CS_IMG_TOO_LARGE), "too_large") == 0, "status name");
}

/* A PNG made of a signature and an IHDR chunk with a correct CRC, no pixels. */
static size_t png_header_only(uint8_t *out, uint32_t w, uint32_t h)
{
    const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t ihdr[4 + 13] = {'I', 'H', 'D', 'R', (uint8_t)(w >> 24), (uint8_t)(w >> 16),
                            (uint8_t)(w >> 8), (uint8_t)w, (uint8_t)(h >> 24), (uint8_t)(h >> 16),
                            (uint8_t)(h >> 8), (uint8_t)h, 8, 2, 0, 0, 0};
    uint32_t crc = (uint32_t)crc32(0, ihdr, sizeof ihdr);
    memcpy(out, sig, 8);
    const uint8_t len[4] = {0, 0, 0, 13};
    memcpy(out + 8, len, 4);
    memcpy(out + 12, ihdr, sizeof ihdr);
    const uint8_t c[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                          (uint8_t)crc};
    memcpy(out + 29, c, 4);
    return 33;
}

static void test_too_large(void)
{
    uint8_t buf[64];
    size_t n = png_header_only(buf, 100000, 100000);
    cs_image img;
    CHECK(decode(buf, n, 0, &img) == CS_IMG_TOO_LARGE, "PNG 100000x100000, default limit");
    CHECK(decode(buf, n, (size_t)1 << 40, &img) == CS_IMG_CORRUPT,
          "same header under a huge limit: no pixel data, so corrupt");
    n = png_header_only(buf, 0x7fffffff, 0x7fffffff);
    CHECK(decode(buf, n, 0, &img) == CS_IMG_TOO_LARGE, "PNG 2^31 x 2^31");

    /* a real photo above a small limit */
    size_t len;
    uint8_t *png = test_read_file(PHOTOS "chelsea.png", &len);
    if (png) {
        CHECK(decode(png, len, 451 * 300 - 1, &img) == CS_IMG_TOO_LARGE, "chelsea limit-1");
        CHECK(decode(png, len, 451 * 300, &img) == CS_IMG_OK, "chelsea at the limit");
        cs_image_free(&img);
        free(png);
    }
    /* a JPEG whose SOF declares 60000 x 60000 */
    uint8_t *jpg = test_read_file(PHOTOS "rocket.jpg", &len);
    if (jpg) {
        size_t i;
        for (i = 2; i + 9 < len; i++)
            if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0)
                break;
        CHECK(i + 9 < len, "rocket.jpg has an SOF0 marker");
        if (i + 9 < len) {
            jpg[i + 5] = 0xEA, jpg[i + 6] = 0x60; /* height 60000 */
            jpg[i + 7] = 0xEA, jpg[i + 8] = 0x60; /* width 60000 */
            CHECK(decode(jpg, len, 0, &img) == CS_IMG_TOO_LARGE, "JPEG 60000x60000");
        }
        free(jpg);
    }
}

static int image_is_zero(const cs_image *img)
{
    for (size_t i = 0; i < (size_t)img->w * img->h * img->c; i++)
        if (img->px[i])
            return 0;
    return 1;
}

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 24;
}

static void test_truncated_png(void)
{
    size_t len;
    uint8_t *buf = test_read_file(PHOTOS "chelsea.png", &len);
    CHECK(buf != NULL, "chelsea.png");
    if (!buf)
        return;
    size_t cuts[] = {4, 7, 8, 16, 24, 33, 40, 60, 100, 1000, len / 2, len - 13, len - 12, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        cs_image img;
        int rc = decode(buf, cuts[i], 0, &img);
        CHECK(rc == CS_IMG_CORRUPT, "chelsea.png cut at %zu: rc %d", cuts[i], rc);
    }
    free(buf);
}

static void test_garbage_after_signature(void)
{
    uint32_t seed = 12345;
    uint8_t buf[4096];
    const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    for (int round = 0; round < 50; round++) {
        size_t n = 8 + (size_t)(lcg(&seed) * 16) % (sizeof buf - 8);
        for (size_t i = 0; i < n; i++)
            buf[i] = (uint8_t)lcg(&seed);
        cs_image img;
        memcpy(buf, png_sig, 8);
        int rc = decode(buf, n, 0, &img);
        CHECK(rc == CS_IMG_CORRUPT, "PNG signature + %zu random bytes: rc %d", n - 8, rc);
        buf[0] = 0xFF, buf[1] = 0xD8, buf[2] = 0xFF;
        rc = decode(buf, n, 0, &img);
        CHECK(rc == CS_IMG_CORRUPT, "JPEG signature + random bytes: rc %d", rc);
    }
    /* damage inside a real JPEG's data: decoded or refused, but no crash or leak */
    size_t len;
    uint8_t *jpg = test_read_file(PHOTOS "rocket.jpg", &len);
    if (!jpg)
        return;
    for (int round = 0; round < 20; round++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, jpg, len);
        for (int k = 0; k < 8; k++)
            copy[1000 + (lcg(&seed) << 8 | lcg(&seed)) % (len - 2000)] = (uint8_t)lcg(&seed);
        cs_image img;
        int rc = decode(copy, len, 0, &img);
        CHECK(rc == CS_IMG_OK || rc == CS_IMG_CORRUPT, "damaged JPEG: rc %d", rc);
        cs_image_free(&img);
        free(copy);
    }
    free(jpg);
}

/* A flat w x h JPEG at quality 100 in the given colour space (one pixel value). */
static unsigned char *write_jpeg(int w, int h, J_COLOR_SPACE cs, int comps, const uint8_t *value,
                                 unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 100, TRUE);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * comps);
    for (int x = 0; x < w; x++)
        memcpy(row + (size_t)x * comps, value, (size_t)comps);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

static void test_jpeg_gray_and_cmyk(void)
{
    cs_image img;
    unsigned long len = 0;
    const uint8_t g[1] = {77};
    unsigned char *j = write_jpeg(16, 8, JCS_GRAYSCALE, 1, g, &len);
    CHECK(decode(j, len, 0, &img) == CS_IMG_OK, "gray JPEG");
    CHECK(img.c == 1 && img.w == 16 && img.h == 8, "gray JPEG shape");
    if (img.px)
        CHECK(abs(img.px[0] - 77) <= 1 && abs(img.px[127] - 77) <= 1, "gray value %d", img.px[0]);
    cs_image_free(&img);
    CHECK(decode(j, len - 10, 0, &img) == CS_IMG_CORRUPT, "gray JPEG truncated");
    free(j);

    /* CMYK with libjpeg's Adobe marker: stored inverted (Photoshop's convention), so
     * stored (255, 128, 0, 255) means inks (0, 127, 255, 0): orange (255, 128, 0) */
    const uint8_t cmyk[4] = {255, 128, 0, 255};
    j = write_jpeg(8, 8, JCS_CMYK, 4, cmyk, &len);
    CHECK(decode(j, len, 0, &img) == CS_IMG_OK, "CMYK JPEG");
    CHECK(img.c == 3, "CMYK -> RGB");
    if (img.px)
        CHECK(abs(img.px[0] - 255) <= 2 && abs(img.px[1] - 128) <= 2 && img.px[2] <= 2,
              "CMYK colour %d %d %d", img.px[0], img.px[1], img.px[2]);
    cs_image_free(&img);
    free(j);
}

/* ---- PNG variants written with libpng, to check every conversion path ---- */

typedef struct {
    uint8_t *buf;
    size_t len;
} mem_out;

static void mem_write(png_structp png, png_bytep data, size_t n)
{
    mem_out *m = png_get_io_ptr(png);
    m->buf = realloc(m->buf, m->len + n);
    memcpy(m->buf + m->len, data, n);
    m->len += n;
}

static void mem_flush(png_structp png)
{
    (void)png;
}

/* rows: h rows of raw PNG samples for the given type and depth */
static mem_out write_png(int w, int h, int depth, int color, int interlace, uint8_t **rows,
                         const png_color *pal, int npal, const uint8_t *trns, int ntrns)
{
    mem_out m = {NULL, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.buf);
        m.buf = NULL;
        return m;
    }
    png_set_write_fn(png, &m, mem_write, mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal)
        png_set_PLTE(png, info, pal, npal);
    if (trns)
        png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, info);
    png_destroy_write_struct(&png, &info);
    return m;
}

static void test_png_variants(void)
{
    cs_image img;
    /* gray + alpha, 8 bit: alpha dropped */
    {
        uint8_t r0[] = {10, 255, 20, 0}, r1[] = {30, 128, 40, 7};
        uint8_t *rows[] = {r0, r1};
        mem_out m = write_png(2, 2, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 0, rows, NULL, 0, NULL, 0);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "gray+alpha");
        CHECK(img.c == 1 && img.w == 2 && img.h == 2, "gray+alpha shape");
        if (img.px)
            CHECK(img.px[0] == 10 && img.px[1] == 20 && img.px[2] == 30 && img.px[3] == 40,
                  "gray+alpha values %d %d %d %d", img.px[0], img.px[1], img.px[2], img.px[3]);
        cs_image_free(&img);
        free(m.buf);
    }
    /* RGBA: alpha dropped */
    {
        uint8_t r0[] = {1, 2, 3, 0, 4, 5, 6, 255};
        uint8_t *rows[] = {r0};
        mem_out m = write_png(2, 1, 8, PNG_COLOR_TYPE_RGBA, 0, rows, NULL, 0, NULL, 0);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "rgba");
        CHECK(img.c == 3, "rgba -> 3 channels");
        if (img.px)
            CHECK(img.px[0] == 1 && img.px[2] == 3 && img.px[3] == 4 && img.px[5] == 6,
                  "rgba values");
        cs_image_free(&img);
        free(m.buf);
    }
    /* palette with transparency, 4-bit indices */
    {
        png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}};
        uint8_t trns[3] = {0, 128, 255};
        uint8_t r0[] = {0x01, 0x20}; /* indices 0 1 2 0 */
        uint8_t *rows[] = {r0};
        mem_out m = write_png(4, 1, 4, PNG_COLOR_TYPE_PALETTE, 0, rows, pal, 3, trns, 3);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "palette");
        CHECK(img.c == 3 && img.w == 4, "palette shape %dx%dx%d", img.w, img.h, img.c);
        if (img.px) {
            const uint8_t want[12] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 0, 0};
            CHECK(memcmp(img.px, want, 12) == 0, "palette values");
        }
        cs_image_free(&img);
        free(m.buf);
    }
    /* 16-bit RGB: high byte kept */
    {
        uint8_t r0[] = {0x12, 0x34, 0xAB, 0xCD, 0xFF, 0xFF};
        uint8_t *rows[] = {r0};
        mem_out m = write_png(1, 1, 16, PNG_COLOR_TYPE_RGB, 0, rows, NULL, 0, NULL, 0);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "16-bit");
        if (img.px)
            CHECK(img.c == 3 && img.px[0] == 0x12 && img.px[1] == 0xAB && img.px[2] == 0xFF,
                  "16-bit values %d %d %d", img.px[0], img.px[1], img.px[2]);
        cs_image_free(&img);
        free(m.buf);
    }
    /* 1-bit gray: expanded to 0 / 255 */
    {
        uint8_t r0[] = {0xA0}; /* 1 0 1 0 */
        uint8_t *rows[] = {r0};
        mem_out m = write_png(4, 1, 1, PNG_COLOR_TYPE_GRAY, 0, rows, NULL, 0, NULL, 0);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "1-bit");
        if (img.px)
            CHECK(img.c == 1 && img.px[0] == 255 && img.px[1] == 0 && img.px[2] == 255 &&
                      img.px[3] == 0,
                  "1-bit values");
        cs_image_free(&img);
        free(m.buf);
    }
    /* interlaced (Adam7) RGB: same pixels as written */
    {
        enum { W = 13, H = 11 };
        static uint8_t px[H][W * 3];
        uint8_t *rows[H];
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W * 3; x++)
                px[y][x] = (uint8_t)(y * 31 + x * 7);
            rows[y] = px[y];
        }
        mem_out m =
            write_png(W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7, rows, NULL, 0, NULL, 0);
        CHECK(decode(m.buf, m.len, 0, &img) == CS_IMG_OK, "interlaced");
        if (img.px)
            CHECK(img.w == W && img.h == H && memcmp(img.px, px, sizeof px) == 0,
                  "interlaced pixels");
        cs_image_free(&img);
        /* and cut short */
        CHECK(decode(m.buf, m.len - 30, 0, &img) == CS_IMG_CORRUPT, "interlaced, truncated");
        free(m.buf);
    }
}


/* ---- decompression bombs and other costly uploads ---- */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* Appends one chunk with its CRC to buf at *n. */
static void put_chunk(uint8_t *buf, size_t *n, const char *type, const uint8_t *data, uint32_t len)
{
    uint8_t *p = buf + *n;
    put_be32(p, len);
    memcpy(p + 4, type, 4);
    if (len)
        memcpy(p + 8, data, len);
    put_be32(p + 8 + len, (uint32_t)crc32(0, p + 4, len + 4));
    *n += 12 + (size_t)len;
}

/* A w x h 8-bit PNG (color 0 gray or 2 RGB, interlace 0 or 1) whose one IDAT holds
 * zlib(raw) followed, inside the same zlib stream, by `extra` zero bytes that are not
 * part of the image: what libpng inflates after the last row. *len receives the size;
 * the caller frees. */
static uint8_t *png_with_trailing(int w, int h, int color, int interlace, const uint8_t *raw,
                                  size_t raw_len, size_t extra, size_t *len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    deflateInit(&z, 9);
    size_t cap = deflateBound(&z, (uLong)(raw_len + extra)) + 4096;
    uint8_t *zbuf = malloc(cap), *zeros = calloc(1, 1 << 20);
    z.next_out = zbuf;
    z.avail_out = (uInt)cap;
    z.next_in = (Bytef *)raw;
    z.avail_in = (uInt)raw_len;
    deflate(&z, Z_NO_FLUSH);
    for (size_t left = extra; left;) {
        size_t k = left < (1u << 20) ? left : (1u << 20);
        z.next_in = zeros;
        z.avail_in = (uInt)k;
        deflate(&z, Z_NO_FLUSH);
        left -= k;
    }
    deflate(&z, Z_FINISH);
    size_t zlen = z.total_out;
    deflateEnd(&z);
    uint8_t *png = malloc(zlen + 64), ihdr[13];
    size_t n = 8;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    put_be32(ihdr, (uint32_t)w);
    put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8, ihdr[9] = (uint8_t)color, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = (uint8_t)interlace;
    put_chunk(png, &n, "IHDR", ihdr, 13);
    put_chunk(png, &n, "IDAT", zbuf, (uint32_t)zlen);
    put_chunk(png, &n, "IEND", NULL, 0);
    free(zbuf);
    free(zeros);
    *len = n;
    return png;
}

/* A 100x100 PNG whose IDAT inflates to 128 MiB past its 30 KB of pixels decodes to the
 * right pixels, and the decoder stops reading its input soon after the last row
 * instead of inflating the rest (before: it read every byte of the file, and a
 * gigabyte of trailing data took seconds of CPU). */
static void test_png_bomb_stops_at_last_row(void)
{
    enum { W = 100, H = 100 };
    size_t raw_len = (size_t)H * (1 + 3 * W), len = 0;
    uint8_t *raw = calloc(1, raw_len);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < 3 * W; x++)
            raw[(size_t)y * (1 + 3 * W) + 1 + x] = (uint8_t)(x * 7 + y * 3);
    uint8_t *png = png_with_trailing(W, H, 2, 0, raw, raw_len, (size_t)128 << 20, &len);
    cs_image img;
    size_t consumed = 0;
    char err[200] = "";
    int rc = cs_image_decode_limited(png, len, NULL, &img, &consumed, err, sizeof err);
    CHECK(rc == CS_IMG_OK, "bomb: rc %d (%s)", rc, err);
    CHECK(len > 100000, "the bomb is %zu bytes", len);
    CHECK(consumed < 32768, "decoder read %zu of %zu bytes: it went on inflating", consumed, len);
    if (rc == CS_IMG_OK) {
        int same = img.w == W && img.h == H && img.c == 3;
        for (int y = 0; same && y < H; y++)
            same = memcmp(img.px + (size_t)y * 3 * W, raw + (size_t)y * (1 + 3 * W) + 1, 3 * W) == 0;
        CHECK(same, "bomb pixels");
    }
    cs_image_free(&img);
    /* Zero rows compress to a few bytes, so all the decoder reads past them is trailing
     * data: at most one piece of the IDAT chunk beyond the rows (libpng's own 8 KB read
     * buffer, inflated after the last row, made 8 MB of work from the trailing zeros). */
    memset(raw, 0, raw_len);
    uint8_t *zeros = png_with_trailing(W, H, 2, 0, raw, raw_len, (size_t)64 << 20, &len);
    consumed = 0;
    rc = cs_image_decode_limited(zeros, len, NULL, &img, &consumed, err, sizeof err);
    CHECK(rc == CS_IMG_OK && image_is_zero(&img), "zero rows: rc %d (%s)", rc, err);
    CHECK(consumed <= 33 + 8 + 2 * 1024 + 4, "zero rows: the decoder read %zu bytes", consumed);
    cs_image_free(&img);
    free(zeros);
    /* the same file with a damaged CRC on IEND, after the part the decoder reads */
    png[len - 1] ^= 1;
    CHECK(decode(png, len, 0, &img) == CS_IMG_CORRUPT, "bad IEND CRC");
    free(png);

    /* interlaced (Adam7), gray: 7 passes of sub-images, all zero pixels */
    raw_len = 0;
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1};
    static const int y0[7] = {0, 0, 4, 0, 2, 0, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    for (int p = 0; p < 7; p++) {
        size_t pw = (size_t)(W - x0[p] + dx[p] - 1) / dx[p], ph = (size_t)(H - y0[p] + dy[p] - 1) / dy[p];
        if (pw && ph)
            raw_len += ph * (1 + pw);
    }
    memset(raw, 0, raw_len);
    png = png_with_trailing(W, H, 0, 1, raw, raw_len, (size_t)64 << 20, &len);
    consumed = 0;
    rc = cs_image_decode_limited(png, len, NULL, &img, &consumed, err, sizeof err);
    CHECK(rc == CS_IMG_OK && img.w == W && img.c == 1 && image_is_zero(&img), "interlaced bomb: rc %d (%s)", rc,
          err);
    CHECK(consumed < 32768, "interlaced: decoder read %zu of %zu bytes", consumed, len);
    cs_image_free(&img);
    free(png);
    free(raw);
}

/* A JPEG of w x h in the given scan script (NULL: libjpeg's progressive default). */
static unsigned char *write_progressive(int w, int h, const jpeg_scan_info *scans, int n_scans,
                                        unsigned long *len)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    unsigned char *out = NULL;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &out, len);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_simple_progression(&c);
    if (scans) {
        c.scan_info = scans;
        c.num_scans = n_scans;
    }
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * 3; x++)
            row[x] = (uint8_t)(x + c.next_scanline * 5);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return out;
}

/* Each scan of a progressive JPEG walks every block of the image again: a file of many
 * scans multiplies the work without growing much. Past the scan limit it is refused
 * as too costly; libjpeg's own progression (10 scans) decodes. */
static void test_jpeg_scan_limit(void)
{
    cs_image img;
    char err[200] = "";
    unsigned long len = 0;
    unsigned char *j = write_progressive(64, 48, NULL, 0, &len);
    CHECK(cs_image_decode_limited(j, len, NULL, &img, NULL, err, sizeof err) == CS_IMG_OK && img.w == 64,
          "simple progression: %s", err);
    cs_image_free(&img);
    cs_image_limits few = {.max_scans = 5};
    int rc = cs_image_decode_limited(j, len, &few, &img, NULL, err, sizeof err);
    CHECK(rc == CS_IMG_TOO_COSTLY && img.px == NULL && strstr(err, "scans"), "10 scans, limit 5: rc %d (%s)", rc,
          err);
    free(j);

    /* DC first, then every AC coefficient of every component in a scan of its own,
     * then a refinement of each: 1 + 2 * 63 * 3 = 379 scans, a valid file */
    static jpeg_scan_info scans[1 + 2 * 63 * 3];
    int n = 0;
    scans[n++] = (jpeg_scan_info){3, {0, 1, 2, 0}, 0, 0, 0, 0};
    for (int pass = 0; pass < 2; pass++)
        for (int comp = 0; comp < 3; comp++)
            for (int k = 1; k < 64; k++)
                scans[n++] = (jpeg_scan_info){1, {comp, 0, 0, 0}, k, k, pass ? 1 : 0, pass ? 0 : 1};
    j = write_progressive(64, 48, scans, n, &len);
    rc = cs_image_decode_limited(j, len, NULL, &img, NULL, err, sizeof err);
    CHECK(rc == CS_IMG_TOO_COSTLY && strstr(err, "scans"), "%d scans: rc %d (%s)", n, rc, err);
    cs_image_limits many = {.max_scans = 1000};
    rc = cs_image_decode_limited(j, len, &many, &img, NULL, err, sizeof err);
    CHECK(rc == CS_IMG_OK && img.w == 64 && img.h == 48, "%d scans under a limit of 1000: rc %d (%s)", n, rc, err);
    cs_image_free(&img);
    free(j);
}

/* A decode past its time budget stops with CS_IMG_TOO_COSTLY (a budget of 1 ns is
 * spent before the first row). */
static void test_decode_time_budget(void)
{
    const char *files[] = {PHOTOS "astronaut.png", PHOTOS "rocket.jpg"};
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *buf = test_read_file(files[i], &len);
        CHECK(buf != NULL, "%s", files[i]);
        if (!buf)
            continue;
        cs_image img;
        char err[200] = "";
        cs_image_limits lim = {.max_seconds = 1e-9};
        int rc = cs_image_decode_limited(buf, len, &lim, &img, NULL, err, sizeof err);
        CHECK(rc == CS_IMG_TOO_COSTLY && img.px == NULL && strstr(err, "longer"), "%s: rc %d (%s)", files[i], rc,
              err);
        lim.max_seconds = 60;
        rc = cs_image_decode_limited(buf, len, &lim, &img, NULL, err, sizeof err);
        CHECK(rc == CS_IMG_OK, "%s with a minute: rc %d (%s)", files[i], rc, err);
        cs_image_free(&img);
        free(buf);
    }
}

static void test_probe(void)
{
    const struct {
        const char *file;
        int w, h;
    } photos[] = {{PHOTOS "chelsea.png", 451, 300}, {PHOTOS "rocket.jpg", 640, 427}};
    char err[200];
    for (int i = 0; i < 2; i++) {
        size_t len;
        uint8_t *buf = test_read_file(photos[i].file, &len);
        int w = -1, h = -1;
        CHECK(buf && cs_image_probe(buf, len, &w, &h, err, sizeof err) == CS_IMG_OK && w == photos[i].w &&
                  h == photos[i].h,
              "%s: %dx%d", photos[i].file, w, h);
        /* only the header is needed */
        CHECK(buf && cs_image_probe(buf, len < 2000 ? len : 2000, &w, &h, err, sizeof err) == CS_IMG_OK,
              "%s: first 2000 bytes", photos[i].file);
        CHECK(buf && cs_image_probe(buf, 20, &w, &h, err, sizeof err) == CS_IMG_CORRUPT && err[0],
              "%s: cut in the header", photos[i].file);
        free(buf);
    }
    uint8_t hdr[64];
    size_t n = png_header_only(hdr, 70000, 60000);
    int w, h;
    CHECK(cs_image_probe(hdr, n, &w, &h, err, sizeof err) == CS_IMG_OK && w == 70000 && h == 60000,
          "huge declared PNG: %dx%d", w, h);
    CHECK(cs_image_probe("text", 4, &w, &h, err, sizeof err) == CS_IMG_NOT_IMAGE, "text");
}

static void test_encode_roundtrip(void)
{
    for (int c = 1; c <= 3; c += 2) {
        cs_image a;
        CHECK(cs_image_alloc(&a, 37, 23, c) == CS_IMG_OK, "alloc");
        for (size_t i = 0; i < (size_t)37 * 23 * c; i++)
            a.px[i] = (uint8_t)(i * 2654435761u >> 13);
        uint8_t *png = NULL;
        size_t len = 0;
        CHECK(cs_image_encode_png(&a, &png, &len) == CS_IMG_OK && png && len > 8, "encode");
        cs_image b;
        CHECK(decode(png, len, 0, &b) == CS_IMG_OK, "decode own PNG");
        CHECK(b.w == 37 && b.h == 23 && b.c == c, "shape %dx%dx%d", b.w, b.h, b.c);
        if (b.px)
            CHECK(memcmp(a.px, b.px, (size_t)37 * 23 * c) == 0, "pixels equal (c=%d)", c);
        free(png);
        cs_image_free(&a);
        cs_image_free(&b);
    }
    /* a photo survives too */
    size_t len;
    uint8_t *buf = test_read_file(PHOTOS "astronaut.png", &len);
    if (buf) {
        cs_image a, b;
        uint8_t *png = NULL;
        size_t plen = 0;
        CHECK(decode(buf, len, 0, &a) == CS_IMG_OK, "astronaut");
        CHECK(cs_image_encode_png(&a, &png, &plen) == CS_IMG_OK, "encode astronaut");
        CHECK(decode(png, plen, 0, &b) == CS_IMG_OK, "decode astronaut");
        CHECK(a.px && b.px && memcmp(a.px, b.px, (size_t)512 * 512 * 3) == 0, "astronaut equal");
        cs_image_free(&a);
        cs_image_free(&b);
        free(png);
        free(buf);
    }
    cs_image bad = {0, 0, 1, NULL};
    uint8_t *png = (uint8_t *)1;
    size_t plen = 1;
    CHECK(cs_image_encode_png(&bad, &png, &plen) != CS_IMG_OK && png == NULL && plen == 0,
          "invalid image refused");
}

static void test_bilinear_2x2_to_4x4(void)
{
    /* Along each axis 2 -> 4 the taps are (0: 1), (0: .75, 1: .25), (0: .25, 1: .75),
     * (1: 1): positions (d + .5) / 2 - .5 = -.25 (clamped), .25, .75, 1.25 (clamped).
     * Rows [0 100] and [200 40] become [0 25 75 100] and [200 160 80 40]; the
     * middle rows mix them .75/.25 and .25/.75. */
    const float src[4] = {0, 100, 200, 40};
    const float want[16] = {0,   25,     75,    100, 50,  58.75, 76.25, 85,
                            150, 126.25, 78.75, 55,  200, 160,   80,    40};
    float dst[16];
    cs_resize_bilinear_f32(src, 2, 2, dst, 4, 4);
    for (int i = 0; i < 16; i++)
        CHECK_NEAR(dst[i], want[i], 1e-4, "f32 bilinear");

    cs_image a, b;
    cs_image_alloc(&a, 2, 2, 1);
    for (int i = 0; i < 4; i++)
        a.px[i] = (uint8_t)src[i];
    CHECK(cs_image_resize_bilinear(&a, 4, 4, &b) == CS_IMG_OK, "u8 bilinear");
    const uint8_t want8[16] = {0, 25, 75, 100, 50, 59, 76, 85, 150, 126, 79, 55, 200, 160, 80, 40};
    CHECK(b.px && memcmp(b.px, want8, 16) == 0, "u8 bilinear values");
    cs_image_free(&b);

    /* same size: identity; 4 -> 2: the half-pixel centres fall between pairs */
    float same[4];
    cs_resize_bilinear_f32(src, 2, 2, same, 2, 2);
    CHECK(memcmp(same, src, sizeof same) == 0, "identity");
    const float row4[4] = {0, 10, 20, 30};
    float row2[2];
    cs_resize_bilinear_f32(row4, 1, 4, row2, 1, 2);
    CHECK_NEAR(row2[0], 5, 1e-6, "4->2 first");
    CHECK_NEAR(row2[1], 25, 1e-6, "4->2 second");
    cs_image_free(&a);
}

/* cv2 INTER_LINEAR one value at a time, as the resizer computed it before it kept
 * resampled rows: the separable version must give the same bits. */
static void ref_tap(int d, int s, int dn, int *i0, int *i1, float *w0, float *w1)
{
    double scale = 1.0 / ((double)dn / s);
    float f = (float)((d + 0.5) * scale - 0.5);
    int i = (int)floorf(f);
    f -= (float)i;
    if (i < 0)
        i = 0, f = 0.f;
    if (i >= s - 1)
        i = s - 1, f = 0.f;
    *i0 = i, *i1 = i + 1 < s ? i + 1 : s - 1, *w0 = 1.f - f, *w1 = f;
}

static float ref_bilinear(const float *src, int sh, int sw, int c, int dh, int dw, int dy, int dx, int ch)
{
    int y0, y1, x0, x1;
    float wy0, wy1, wx0, wx1;
    ref_tap(dy, sh, dh, &y0, &y1, &wy0, &wy1);
    ref_tap(dx, sw, dw, &x0, &x1, &wx0, &wx1);
    float h0 = src[((size_t)y0 * sw + x0) * c + ch] * wx0 + src[((size_t)y0 * sw + x1) * c + ch] * wx1;
    float h1 = src[((size_t)y1 * sw + x0) * c + ch] * wx0 + src[((size_t)y1 * sw + x1) * c + ch] * wx1;
    return h0 * wy0 + h1 * wy1;
}

static void test_bilinear_separable_same_bits(void)
{
    const int sizes[][4] = {{28, 28, 540, 540}, {11, 11, 28, 28}, {13, 7, 300, 17}, {224, 224, 100, 80},
                            {5, 9, 5, 9}, {1, 1, 7, 3}, {640, 480, 224, 224}, {3, 200, 41, 2}};
    unsigned st = 7;
    for (int k = 0; k < 8; k++)
        for (int c = 1; c <= 3; c += 2) {
            const int sh = sizes[k][0], sw = sizes[k][1], dh = sizes[k][2], dw = sizes[k][3];
            const size_t sn = (size_t)sh * sw * c, dn = (size_t)dh * dw * c;
            cs_image a, b;
            float *f = malloc(sn * sizeof *f), *u = malloc(sn * sizeof *u), *g = malloc(dn * sizeof *g);
            uint8_t *g8 = malloc(dn);
            CHECK(f && u && g && g8 && cs_image_alloc(&a, sw, sh, c) == CS_IMG_OK, "alloc");
            if (!(f && u && g && g8)) return;
            for (size_t i = 0; i < sn; i++) {
                st = st * 1103515245u + 12345u;
                a.px[i] = (uint8_t)(st >> 24);
                u[i] = a.px[i];
                f[i] = (float)(st >> 8) / 65536.f - 100.f; /* beyond 0..255: the u8 output clamps */
            }
            CHECK(cs_image_resize_bilinear(&a, dw, dh, &b) == CS_IMG_OK, "u8 resize");
            cs_resize_bilinear_f32_u8(f, sh, sw, c, g8, dh, dw);
            int bad8 = 0, badf = 0, badfu = 0;
            for (int dy = 0; dy < dh; dy++)
                for (int dx = 0; dx < dw; dx++)
                    for (int ch = 0; ch < c; ch++) {
                        const size_t o = ((size_t)dy * dw + dx) * c + ch;
                        long r8 = lrintf(ref_bilinear(u, sh, sw, c, dh, dw, dy, dx, ch));
                        long rf = lrintf(ref_bilinear(f, sh, sw, c, dh, dw, dy, dx, ch));
                        bad8 += b.px[o] != (uint8_t)(r8 < 0 ? 0 : r8 > 255 ? 255 : r8);
                        badfu += g8[o] != (uint8_t)(rf < 0 ? 0 : rf > 255 ? 255 : rf);
                    }
            if (c == 1) { /* the float plane */
                cs_resize_bilinear_f32(f, sh, sw, g, dh, dw);
                for (int dy = 0; dy < dh; dy++)
                    for (int dx = 0; dx < dw; dx++) {
                        float want = ref_bilinear(f, sh, sw, 1, dh, dw, dy, dx, 0);
                        badf += memcmp(&g[(size_t)dy * dw + dx], &want, sizeof want) != 0;
                    }
            }
            CHECK(!bad8 && !badf && !badfu, "%dx%dx%d -> %dx%d: %d u8, %d float, %d float-to-u8 values differ", sh,
                  sw, c, dh, dw, bad8, badf, badfu);
            cs_image_free(&a);
            cs_image_free(&b);
            free(f);
            free(u);
            free(g);
            free(g8);
        }
}

static void test_nearest_pil(void)
{
    /* floor((d + .5) * src / dst) */
    cs_image a, b;
    cs_image_alloc(&a, 5, 1, 1);
    for (int i = 0; i < 5; i++)
        a.px[i] = (uint8_t)(10 * i);
    cs_image_resize_nearest(&a, 3, 1, &b); /* .83 2.5 4.17 -> 0 2 4 */
    CHECK(b.px[0] == 0 && b.px[1] == 20 && b.px[2] == 40, "5->3: %d %d %d", b.px[0], b.px[1],
          b.px[2]);
    cs_image_free(&b);
    cs_image_resize_nearest(&a, 2, 1, &b); /* 1.25 3.75 -> 1 3 */
    CHECK(b.px[0] == 10 && b.px[1] == 30, "5->2");
    cs_image_free(&b);
    cs_image_resize_nearest(&a, 8, 1, &b); /* .3125 .94 1.56 2.19 2.81 3.44 4.06 4.69 */
    const uint8_t want[8] = {0, 0, 10, 20, 20, 30, 40, 40};
    CHECK(memcmp(b.px, want, 8) == 0, "5->8");
    cs_image_free(&b);
    cs_image_free(&a);

    /* 640x427 -> 224x224, the VGG16 case: columns and rows picked */
    cs_image big;
    cs_image_alloc(&big, 640, 427, 3);
    for (int y = 0; y < 427; y++)
        for (int x = 0; x < 640; x++) {
            uint8_t *p = big.px + ((size_t)y * 640 + x) * 3;
            p[0] = (uint8_t)x, p[1] = (uint8_t)(x >> 8), p[2] = (uint8_t)y;
        }
    CHECK(cs_image_resize_nearest(&big, 224, 224, &b) == CS_IMG_OK, "640x427 -> 224");
    int xs[] = {0, 1, 100, 223}, want_x[] = {1, 4, 287, 638}; /* (x + .5) * 2.857 */
    for (int i = 0; i < 4; i++) {
        const uint8_t *p = b.px + (size_t)xs[i] * 3;
        CHECK(p[0] + 256 * p[1] == want_x[i], "x %d -> %d", xs[i], p[0] + 256 * p[1]);
    }
    int ys[] = {0, 223}, want_y[] = {0, 426}; /* .5 * 1.90625 = .95, 223.5 * 1.90625 = 426.05 */
    for (int i = 0; i < 2; i++)
        CHECK(b.px[(size_t)ys[i] * 224 * 3 + 2] == (uint8_t)want_y[i], "y %d", ys[i]);
    cs_image_free(&b);
    cs_image_free(&big);
}

static void test_area(void)
{
    /* 4x4 -> 2x2: plain 2x2 block means */
    cs_image a, b;
    cs_image_alloc(&a, 4, 4, 1);
    for (int i = 0; i < 16; i++)
        a.px[i] = (uint8_t)(i * 10);
    CHECK(cs_image_resize_area(&a, 2, 2, &b) == CS_IMG_OK, "area");
    /* block (0,0): 0 10 40 50 -> 25; (0,1): 20 30 60 70 -> 45; 105; 125 */
    CHECK(b.px[0] == 25 && b.px[1] == 45 && b.px[2] == 105 && b.px[3] == 125,
          "area 4->2: %d %d %d %d", b.px[0], b.px[1], b.px[2], b.px[3]);
    cs_image_free(&b);
    cs_image_free(&a);

    /* 3 -> 2: output 0 = (p0 + p1 / 2) / 1.5, output 1 = (p1 / 2 + p2) / 1.5 */
    const float row[3] = {0, 90, 180};
    float out[2];
    cs_resize_area_f32(row, 1, 3, out, 1, 2);
    CHECK_NEAR(out[0], 30, 1e-5, "area 3->2 [0]");
    CHECK_NEAR(out[1], 150, 1e-5, "area 3->2 [1]");
    /* enlarging falls back to bilinear */
    float up[4], upb[4];
    const float two[2] = {0, 100};
    cs_resize_area_f32(two, 1, 2, up, 1, 4);
    cs_resize_bilinear_f32(two, 1, 2, upb, 1, 4);
    CHECK(memcmp(up, upb, sizeof up) == 0, "area enlarging = bilinear");
}

static void test_gray_rgb(void)
{
    cs_image a, g, back;
    cs_image_alloc(&a, 5, 1, 3);
    const uint8_t px[15] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 10, 20, 30};
    memcpy(a.px, px, 15);
    CHECK(cs_image_to_gray(&a, &g) == CS_IMG_OK && g.c == 1, "to gray");
    /* PIL convert("L"): red 76, green 150, blue 29, white 255, (10,20,30) 18 */
    const uint8_t want[5] = {76, 150, 29, 255, 18};
    CHECK(memcmp(g.px, want, 5) == 0, "gray %d %d %d %d %d", g.px[0], g.px[1], g.px[2], g.px[3],
          g.px[4]);
    CHECK(cs_image_to_rgb(&g, &back) == CS_IMG_OK && back.c == 3, "to rgb");
    CHECK(back.px[0] == 76 && back.px[1] == 76 && back.px[2] == 76 && back.px[14] == 18,
          "gray replicated");
    cs_image g2;
    CHECK(cs_image_to_gray(&g, &g2) == CS_IMG_OK && memcmp(g2.px, g.px, 5) == 0, "gray copy");
    cs_image_free(&a);
    cs_image_free(&g);
    cs_image_free(&g2);
    cs_image_free(&back);

    CHECK(cs_image_alloc(&a, 0, 5, 1) == CS_IMG_NOMEM && a.px == NULL, "zero width refused");
    CHECK(cs_image_alloc(&a, 5, 5, 2) == CS_IMG_NOMEM, "2 channels refused");
    cs_image *h = cs_image_new(3, 2, 3);
    CHECK(h && h->w == 3 && h->h == 2 && h->px[17] == 0, "cs_image_new zeroed");
    cs_image_destroy(h);
}

int main(void)
{
    RUN(test_decode_photos);
    RUN(test_truncated_jpeg_is_corrupt);
    RUN(test_not_images);
    RUN(test_too_large);
    RUN(test_truncated_png);
    RUN(test_garbage_after_signature);
    RUN(test_png_variants);
    RUN(test_jpeg_gray_and_cmyk);
    RUN(test_png_bomb_stops_at_last_row);
    RUN(test_jpeg_scan_limit);
    RUN(test_decode_time_budget);
    RUN(test_probe);
    RUN(test_encode_roundtrip);
    RUN(test_bilinear_2x2_to_4x4);
    RUN(test_bilinear_separable_same_bits);
    RUN(test_nearest_pil);
    RUN(test_area);
    RUN(test_gray_rgb);
    return test_summary("image");
}
