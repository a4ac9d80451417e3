/*
 * image.c - decoding uploads (libpng, libjpeg-turbo), PNG encoding, colour
 * conversion and resizing for cs_image. See image.h for the semantics each
 * function reproduces (PIL, OpenCV).
 *
 * Uploads are untrusted: every decoder error ends in a longjmp back to one place
 * that frees what was allocated, sizes are checked from the header before pixel
 * memory is taken, and nothing here prints or exits.
 */
#include "image.h"

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* jpeglib.h needs FILE */
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>
#include <libdeflate.h>
#include <png.h>
#include <zlib.h>

#include "clock.h"

/* ---------------------------------------------------------------- basics */

const char *cs_image_status_name(int code)
{
    switch (code) {
    case CS_IMG_OK: return "ok";
    case CS_IMG_NOT_IMAGE: return "not_image";
    case CS_IMG_CORRUPT: return "corrupt";
    case CS_IMG_TOO_LARGE: return "too_large";
    case CS_IMG_NOMEM: return "nomem";
    case CS_IMG_TOO_COSTLY: return "too_costly";
    }
    return "unknown";
}

/* Byte size of a w x h x c image, or 0 when it cannot be represented. */
static size_t image_bytes(int w, int h, int c)
{
    if (w <= 0 || h <= 0 || c <= 0)
        return 0;
    size_t n = (size_t)w * (size_t)h;
    if (n / (size_t)w != (size_t)h || n > SIZE_MAX / (size_t)c)
        return 0;
    return n * (size_t)c;
}

int cs_image_alloc(cs_image *img, int w, int h, int c)
{
    memset(img, 0, sizeof *img);
    size_t n = image_bytes(w, h, c);
    if (!n || (c != 1 && c != 3))
        return CS_IMG_NOMEM;
    img->px = calloc(n, 1);
    if (!img->px)
        return CS_IMG_NOMEM;
    img->w = w;
    img->h = h;
    img->c = c;
    return CS_IMG_OK;
}

void cs_image_free(cs_image *img)
{
    if (!img)
        return;
    free(img->px);
    memset(img, 0, sizeof *img);
}

cs_image *cs_image_new(int w, int h, int c)
{
    cs_image *img = malloc(sizeof *img);
    if (!img)
        return NULL;
    if (cs_image_alloc(img, w, h, c) != CS_IMG_OK) {
        free(img);
        return NULL;
    }
    return img;
}

void cs_image_destroy(cs_image *img)
{
    if (!img)
        return;
    free(img->px);
    free(img);
}

static int valid_image(const cs_image *img)
{
    return img && img->px && (img->c == 1 || img->c == 3) && image_bytes(img->w, img->h, img->c);
}

static void set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
}

/* ------------------------------------------------------------------ PNG */

static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* What one decode may spend, resolved from cs_image_limits. */
typedef struct {
    size_t max_pixels;
    double deadline; /* cs_now() value; 0: none */
    int max_scans;
} budget;

static int past_deadline(const budget *b)
{
    return b->deadline > 0 && cs_now() > b->deadline;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* IDAT data reaches libpng in chunks of at most this many bytes (see png_read_mem). */
#define PNG_IDAT_PIECE 1024

typedef struct {
    const uint8_t *buf;
    size_t len, pos;   /* pos: the next byte of buf not yet handed to libpng */
    size_t next_chunk; /* offset in buf of the next chunk's header */
    size_t idat_left;  /* data of the current IDAT chunk not yet handed over */
    uint8_t piece[8 + PNG_IDAT_PIECE + 4]; /* an IDAT chunk made of a piece of one */
    size_t piece_len, piece_at;
    const budget *b;
    png_uint_32 height;
    int reading_rows;
    int complete; /* every row is in the caller's buffer */
    int costly;   /* the time budget ran out */
    char msg[128];
} png_src;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "PNG: %s", msg);
    png_longjmp(png, 1);
}

static void png_read_mem(png_structp png, png_bytep data, size_t n)
{
    png_src *s = png_get_io_ptr(png);
    /* After the last row libpng goes on inflating whatever IDAT data follows, to
     * check that the stream ends there: a 100x100 image can carry gigabytes of it.
     * The pixels are complete, so reading stops here (see png_decode). */
    if (s->reading_rows &&
        (png_get_current_pass_number(png) >= 7 || png_get_current_row_number(png) >= s->height)) {
        s->complete = 1;
        png_longjmp(png, 1);
    }
    if (past_deadline(s->b)) {
        s->costly = 1;
        png_on_error(png, "decoding took longer than the time allowed for one image");
    }
    while (n > 0) {
        if (s->piece_at < s->piece_len) {
            size_t k = s->piece_len - s->piece_at < n ? s->piece_len - s->piece_at : n;
            memcpy(data, s->piece + s->piece_at, k);
            s->piece_at += k, data += k, n -= k;
            continue;
        }
        if (s->idat_left == 0 && s->pos == s->next_chunk) {
            /* A chunk header (png_check_chunks saw every one lies inside buf). */
            if (s->len - s->pos < 8)
                png_error(png, "truncated PNG data");
            size_t clen = be32(s->buf + s->pos);
            s->next_chunk = s->pos + 12 + clen;
            if (memcmp(s->buf + s->pos + 4, "IDAT", 4) == 0 && clen > 0) {
                s->idat_left = clen;
                s->pos += 8;
            }
        }
        if (s->idat_left > 0) {
            /* The IDAT chunk handed over in pieces, each an IDAT chunk of its own: libpng
             * reads a chunk's data in buffers of up to 8 KB, and after the last row it
             * inflates what is left of its buffer before asking for more; from 8 KB of
             * a bomb's zeros that is 8 MB, from one piece at most about a thousand
             * times the piece. */
            size_t k = s->idat_left < PNG_IDAT_PIECE ? s->idat_left : PNG_IDAT_PIECE;
            put_be32(s->piece, (uint32_t)k);
            memcpy(s->piece + 4, "IDAT", 4);
            memcpy(s->piece + 8, s->buf + s->pos, k);
            put_be32(s->piece + 8 + k, (uint32_t)crc32(crc32(0L, Z_NULL, 0), s->piece + 4, (uInt)k + 4));
            s->piece_len = 12 + k;
            s->piece_at = 0;
            s->pos += k;
            s->idat_left -= k;
            if (s->idat_left == 0)
                s->pos += 4; /* the whole chunk's CRC, checked by png_check_chunks */
            continue;
        }
        size_t k = s->next_chunk - s->pos < n ? s->next_chunk - s->pos : n;
        if (k > s->len - s->pos || k == 0)
            png_error(png, "truncated PNG data");
        memcpy(data, s->buf + s->pos, k);
        s->pos += k, data += k, n -= k;
    }
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
    /* Benign by definition in libpng (damaged ancillary chunks and the like). */
    (void)png;
    (void)msg;
}

/* The chunk structure, checked before libpng sees the file: every chunk lies inside
 * the buffer, critical chunks' CRCs match, and an IEND ends it. libpng stops reading
 * after the last row (see png_read_mem), so a file cut after its pixel data or a
 * damaged trailing chunk is caught here instead. Linear in the size, no inflating.
 * 0, or -1 with msg set. */
static int png_check_chunks(const uint8_t *buf, size_t len, char *msg, size_t msglen)
{
    size_t pos = 8;
    for (;;) {
        if (len - pos < 12) {
            snprintf(msg, msglen, "PNG: cut short (no IEND chunk)");
            return -1;
        }
        uint32_t n = be32(buf + pos);
        const uint8_t *type = buf + pos + 4;
        if (n > 0x7fffffffu || n > len - pos - 12) {
            snprintf(msg, msglen, "PNG: cut short inside a chunk of %u bytes", n);
            return -1;
        }
        /* A critical chunk's type starts with a capital letter (bit 5 clear). */
        if (!(type[0] & 0x20)) {
            uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), type, (uInt)n + 4);
            if (crc != be32(type + 4 + n)) {
                snprintf(msg, msglen, "PNG: CRC error in a %.4s chunk", (const char *)type);
                return -1;
            }
        }
        if (memcmp(type, "IEND", 4) == 0)
            return 0;
        pos += 12 + (size_t)n;
    }
}

static int png_decode(const uint8_t *buf, size_t len, const budget *b, cs_image *out,
                      size_t *consumed, char *err, size_t errlen)
{
    /* Look at IHDR ourselves first: libpng refuses very large sizes with its own
     * error, which would read as "corrupt" rather than "too large". */
    if (len >= 24 && memcmp(buf + 12, "IHDR", 4) == 0) {
        uint64_t w = be32(buf + 16), h = be32(buf + 20);
        if (w && h && w * h > (uint64_t)b->max_pixels) {
            set_err(err, errlen, "PNG: image dimensions exceed the pixel limit");
            return CS_IMG_TOO_LARGE;
        }
    }
    char msg[128];
    if (png_check_chunks(buf, len, msg, sizeof msg) != 0) {
        set_err(err, errlen, msg);
        return CS_IMG_CORRUPT;
    }

    png_src src = {.buf = buf, .len = len, .next_chunk = 8, .b = b, .msg = ""};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error, png_on_warning);
    if (!png)
        return CS_IMG_NOMEM;
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return CS_IMG_NOMEM;
    }
    /* Kept in volatile storage: they change between setjmp and a possible longjmp. */
    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    volatile int status = CS_IMG_CORRUPT;
    volatile int c = 0;
    volatile png_uint_32 w = 0, h = 0;

    if (setjmp(png_jmpbuf(png))) {
        if (consumed)
            *consumed = src.pos;
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (src.complete)
            goto done;
        free(pixels);
        set_err(err, errlen, src.msg[0] ? src.msg : "PNG: corrupt data");
        return src.costly ? CS_IMG_TOO_COSTLY : status;
    }
    png_set_read_fn(png, &src, png_read_mem);
    /* Only the chunks that make the pixels are read (IHDR, PLTE, tRNS, IDAT, IEND):
     * text, ICC profiles and the like are skipped unread, so none of them is
     * inflated. */
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_chunk_malloc_max(png, 1u << 20);
    png_read_info(png, info);

    int depth, color, interlace;
    png_uint_32 iw, ih;
    png_get_IHDR(png, info, &iw, &ih, &depth, &color, &interlace, NULL, NULL);
    w = iw;
    h = ih;
    src.height = ih;
    if ((uint64_t)iw * ih > (uint64_t)b->max_pixels || iw > INT_MAX || ih > INT_MAX) {
        status = CS_IMG_TOO_LARGE;
        png_error(png, "image dimensions exceed the pixel limit");
    }

    /* Everything to 8-bit gray or RGB, alpha dropped (see image.h for why). */
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_strip_16(png);
    if (color & PNG_COLOR_MASK_ALPHA)
        png_set_strip_alpha(png);
    else if (png_get_valid(png, info, PNG_INFO_tRNS)) {
        png_set_tRNS_to_alpha(png);
        png_set_strip_alpha(png);
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);

    c = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if ((c != 1 && c != 3) || rowbytes != (size_t)iw * (size_t)c)
        png_error(png, "unsupported pixel layout");

    status = CS_IMG_NOMEM;
    size_t n = image_bytes((int)iw, (int)ih, c);
    pixels = n ? malloc(n) : NULL;
    rows = malloc(sizeof(png_bytep) * ih);
    if (!pixels || !rows)
        png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < ih; y++)
        rows[y] = pixels + (size_t)y * rowbytes;

    /* Row by row rather than png_read_image, to keep to the time budget between rows. */
    status = CS_IMG_CORRUPT;
    src.reading_rows = 1;
    for (int p = 0; p < passes; p++)
        for (png_uint_32 y = 0; y < ih; y++) {
            if (past_deadline(b)) {
                src.costly = 1;
                png_error(png, "decoding took longer than the time allowed for one image");
            }
            png_read_row(png, rows[y], NULL);
        }
    /* Not reached in practice: libpng asks for more data after the last row, which
     * png_read_mem answers by jumping back above. */
    if (consumed)
        *consumed = src.pos;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
done:
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->px = pixels;
    return CS_IMG_OK;
}

/* ----------------------------------------------------------------- JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX + 8];
} jpeg_err;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_err *e = (jpeg_err *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(e->msg, sizeof e->msg, "JPEG: %s", buf);
    longjmp(e->jmp, 1);
}

/* libjpeg only warns about damaged data and carries on, padding with gray; for
 * an upload that silently yields a different picture, so those warnings are
 * errors. Extraneous bytes between markers are left alone: many cameras write
 * them and the pixels are intact. */
static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    if (level >= 0)
        return; /* trace output */
    switch (cinfo->err->msg_code) {
    case JWRN_JPEG_EOF:
    case JWRN_HIT_MARKER:
    case JWRN_MUST_RESYNC:
    case JWRN_NOT_SEQUENTIAL:
    case JWRN_HUFF_BAD_CODE:
    case JWRN_BOGUS_PROGRESSION:
        jpeg_on_error(cinfo);
        break;
    default:
        cinfo->err->num_warnings++;
    }
}

/* libjpeg calls this between scans and rows: the place to stop a progressive file
 * whose scans multiply the work (each scan walks every block of the image), and any
 * decode past its time, as libjpeg-turbo's own tools do with -maxscans. */
typedef struct {
    struct jpeg_progress_mgr pub;
    const budget *b;
    jpeg_err *err;
    int costly;
} jpeg_watch;

static void jpeg_on_progress(j_common_ptr cinfo)
{
    jpeg_watch *w = (jpeg_watch *)cinfo->progress;
    int scans = ((j_decompress_ptr)cinfo)->input_scan_number;
    if (scans > w->b->max_scans) {
        w->costly = 1;
        snprintf(w->err->msg, sizeof w->err->msg, "JPEG: more than %d scans", w->b->max_scans);
        longjmp(w->err->jmp, 1);
    }
    if (past_deadline(w->b)) {
        w->costly = 1;
        snprintf(w->err->msg, sizeof w->err->msg,
                 "JPEG: decoding took longer than the time allowed for one image");
        longjmp(w->err->jmp, 1);
    }
}

static int jpeg_decode(const uint8_t *buf, size_t len, const budget *b, cs_image *out,
                       size_t *consumed, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    jpeg_watch watch = {.pub.progress_monitor = jpeg_on_progress, .b = b, .err = &jerr};
    uint8_t *volatile pixels = NULL;
    uint8_t *volatile row = NULL;
    volatile int status = CS_IMG_CORRUPT;

    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jmp)) {
        if (consumed && cinfo.src)
            *consumed = len - cinfo.src->bytes_in_buffer;
        jpeg_destroy_decompress(&cinfo);
        free(pixels);
        free(row);
        set_err(err, errlen, jerr.msg[0] ? jerr.msg : "JPEG: corrupt data");
        return watch.costly ? CS_IMG_TOO_COSTLY : status;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &watch.pub;
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);

    uint64_t npx = (uint64_t)cinfo.image_width * cinfo.image_height;
    if (npx > (uint64_t)b->max_pixels) {
        status = CS_IMG_TOO_LARGE;
        snprintf(jerr.msg, sizeof jerr.msg, "JPEG: image dimensions exceed the pixel limit");
        longjmp(jerr.jmp, 1);
    }
    /* libjpeg's own ceiling on its large buffers (a progressive file keeps every
     * coefficient: 2 bytes per sample, up to 4 samples per pixel), far above what
     * an image of npx pixels needs, so only a broken size estimate hits it. */
    cinfo.mem->max_memory_to_use = (long)(npx * 16 + (16u << 20));

    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    if (cmyk)
        cinfo.out_color_space = JCS_CMYK;
    else if (cinfo.num_components == 1)
        cinfo.out_color_space = JCS_GRAYSCALE;
    else
        cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);

    int w = (int)cinfo.output_width, h = (int)cinfo.output_height;
    int in_c = cinfo.output_components, c = in_c == 1 ? 1 : 3;
    status = CS_IMG_NOMEM;
    size_t n = image_bytes(w, h, c);
    pixels = n ? malloc(n) : NULL;
    row = malloc((size_t)w * (size_t)in_c);
    if (!pixels || !row) {
        snprintf(jerr.msg, sizeof jerr.msg, "JPEG: out of memory");
        longjmp(jerr.jmp, 1);
    }
    status = CS_IMG_CORRUPT;
    while (cinfo.output_scanline < cinfo.output_height) {
        int y = (int)cinfo.output_scanline;
        JSAMPROW rp = row;
        if (jpeg_read_scanlines(&cinfo, &rp, 1) != 1)
            break;
        uint8_t *dst = pixels + (size_t)y * (size_t)w * (size_t)c;
        if (!cmyk) {
            memcpy(dst, row, (size_t)w * (size_t)c);
            continue;
        }
        /* Adobe writes CMYK inverted (0 = full ink); others store it plainly. */
        for (int x = 0; x < w; x++) {
            const uint8_t *p = row + 4 * x;
            int k = cinfo.saw_Adobe_marker ? p[3] : 255 - p[3];
            for (int ch = 0; ch < 3; ch++) {
                int v = cinfo.saw_Adobe_marker ? p[ch] : 255 - p[ch];
                dst[3 * x + ch] = (uint8_t)((v * k + 127) / 255);
            }
        }
    }
    if (cinfo.output_scanline < cinfo.output_height) {
        snprintf(jerr.msg, sizeof jerr.msg, "JPEG: image data ends early");
        longjmp(jerr.jmp, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (consumed)
        *consumed = len - cinfo.src->bytes_in_buffer;
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->w = w;
    out->h = h;
    out->c = c;
    out->px = pixels;
    return CS_IMG_OK;
}

/* ------------------------------------------------------------ entry points */

enum { FMT_NONE, FMT_PNG, FMT_JPEG, FMT_PNG_CUT };

static int sniff(const uint8_t *b, size_t len)
{
    if (!b || len == 0)
        return FMT_NONE;
    if (len >= 8 && memcmp(b, png_sig, 8) == 0)
        return FMT_PNG;
    if (len >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return FMT_JPEG;
    /* A file cut inside the PNG signature is a broken PNG, not some other format. */
    if (len >= 4 && len < 8 && memcmp(b, png_sig, len) == 0)
        return FMT_PNG_CUT;
    return FMT_NONE;
}

static int not_decodable(int fmt, size_t len, char *err, size_t errlen)
{
    if (fmt == FMT_PNG_CUT) {
        set_err(err, errlen, "PNG: truncated signature");
        return CS_IMG_CORRUPT;
    }
    set_err(err, errlen, len ? "not a PNG or JPEG image" : "empty body: expected a PNG or JPEG image");
    return CS_IMG_NOT_IMAGE;
}

int cs_image_decode_limited(const void *buf, size_t len, const cs_image_limits *lim,
                            cs_image *out, size_t *consumed, char *err, size_t errlen)
{
    const uint8_t *b = buf;
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = 0;
    if (consumed)
        *consumed = 0;
    budget bud = {CS_IMG_DEFAULT_MAX_PIXELS, 0, CS_IMG_DEFAULT_MAX_SCANS};
    if (lim && lim->max_pixels)
        bud.max_pixels = lim->max_pixels;
    if (lim && lim->max_scans > 0)
        bud.max_scans = lim->max_scans;
    if (lim && lim->max_seconds > 0)
        bud.deadline = cs_now() + lim->max_seconds;
    int fmt = sniff(b, len);
    if (fmt == FMT_PNG)
        return png_decode(b, len, &bud, out, consumed, err, errlen);
    if (fmt == FMT_JPEG)
        return jpeg_decode(b, len, &bud, out, consumed, err, errlen);
    return not_decodable(fmt, b ? len : 0, err, errlen);
}

int cs_image_decode(const void *buf, size_t len, size_t max_pixels, cs_image *out, char *err,
                    size_t errlen)
{
    cs_image_limits lim = {.max_pixels = max_pixels};
    return cs_image_decode_limited(buf, len, &lim, out, NULL, err, errlen);
}

static int jpeg_probe(const uint8_t *buf, size_t len, int *w, int *h, char *err, size_t errlen)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_err jerr;
    memset(&cinfo, 0, sizeof cinfo);
    cinfo.err = jpeg_std_error(&jerr.pub);
    jerr.pub.error_exit = jpeg_on_error;
    jerr.pub.emit_message = jpeg_on_message;
    jerr.msg[0] = 0;
    if (setjmp(jerr.jmp)) {
        jpeg_destroy_decompress(&cinfo);
        set_err(err, errlen, jerr.msg[0] ? jerr.msg : "JPEG: corrupt data");
        return CS_IMG_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, buf, (unsigned long)len);
    jpeg_read_header(&cinfo, TRUE);
    *w = cinfo.image_width > INT_MAX ? INT_MAX : (int)cinfo.image_width;
    *h = cinfo.image_height > INT_MAX ? INT_MAX : (int)cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return CS_IMG_OK;
}

int cs_image_probe(const void *buf, size_t len, int *w, int *h, char *err, size_t errlen)
{
    const uint8_t *b = buf;
    *w = *h = 0;
    if (err && errlen)
        err[0] = 0;
    int fmt = sniff(b, len);
    if (fmt == FMT_JPEG)
        return jpeg_probe(b, len, w, h, err, errlen);
    if (fmt != FMT_PNG)
        return not_decodable(fmt, b ? len : 0, err, errlen);
    /* IHDR must come first, with its 13 bytes (PNG specification, 5.6). */
    if (len < 33 || be32(b + 8) != 13 || memcmp(b + 12, "IHDR", 4) != 0) {
        set_err(err, errlen, "PNG: no IHDR chunk where the header should be");
        return CS_IMG_CORRUPT;
    }
    uint32_t pw = be32(b + 16), ph = be32(b + 20);
    if (!pw || !ph || pw > 0x7fffffffu || ph > 0x7fffffffu) {
        set_err(err, errlen, "PNG: invalid image size in IHDR");
        return CS_IMG_CORRUPT;
    }
    *w = (int)pw;
    *h = (int)ph;
    return CS_IMG_OK;
}

/* ------------------------------------------------------------ PNG encode */

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int oom;
} png_sink;

static void png_write_mem(png_structp png, png_bytep data, size_t n)
{
    png_sink *s = png_get_io_ptr(png);
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + n)
            cap *= 2;
        uint8_t *nb = realloc(s->buf, cap);
        if (!nb) {
            s->oom = 1;
            png_error(png, "out of memory");
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
}

static void png_flush_mem(png_structp png)
{
    (void)png;
}

static void png_on_write_error(png_structp png, png_const_charp msg)
{
    (void)msg;
    png_longjmp(png, 1);
}

/* The rows as PNG's filter stage leaves them: each row's filter type byte, then its
 * bytes minus the byte one pixel to the left (filter 1, SUB). The pictures served are
 * enlarged and smooth, where SUB leaves mostly small values. */
static void png_filter_sub(const cs_image *img, uint8_t *dst)
{
    const size_t stride = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) {
        const uint8_t *r = img->px + (size_t)y * stride;
        uint8_t *d = dst + (size_t)y * (stride + 1);
        d[0] = PNG_FILTER_VALUE_SUB;
        memcpy(d + 1, r, (size_t)img->c);
        for (size_t i = (size_t)img->c; i < stride; i++) d[1 + i] = (uint8_t)(r[i] - r[i - (size_t)img->c]);
    }
}

int cs_image_encode_png(const cs_image *img, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    if (!valid_image(img))
        return CS_IMG_CORRUPT;
    /* The image data is compressed by libdeflate, whose level 1 took a third of the
     * time of zlib's level 1 (which libpng would use) on a 540x540 overlay, for a
     * smaller file; libpng writes the signature, the header and the chunks around it.
     * These images are made per request and rarely stored: speed over size. */
    const size_t raw = ((size_t)img->w * (size_t)img->c + 1) * (size_t)img->h;
    struct libdeflate_compressor *z = libdeflate_alloc_compressor(1);
    uint8_t *filtered = malloc(raw);
    size_t bound = z ? libdeflate_zlib_compress_bound(z, raw) : 0;
    uint8_t *idat = z ? malloc(bound) : NULL;
    size_t packed = 0;
    if (filtered && idat) {
        png_filter_sub(img, filtered);
        packed = libdeflate_zlib_compress(z, filtered, raw, idat, bound);
    }
    free(filtered);
    if (z)
        libdeflate_free_compressor(z);
    if (!packed) {
        free(idat);
        return CS_IMG_NOMEM;
    }
    png_sink sink = {0};
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, png_on_write_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        free(idat);
        return CS_IMG_NOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(sink.buf);
        free(idat);
        return CS_IMG_NOMEM;
    }
    png_set_write_fn(png, &sink, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    /* One zlib stream over as many IDAT chunks as the chunk length limit needs. */
    for (size_t at = 0; at < packed; at += PNG_UINT_31_MAX) {
        size_t part = packed - at < PNG_UINT_31_MAX ? packed - at : PNG_UINT_31_MAX;
        png_write_chunk(png, (png_const_bytep) "IDAT", idat + at, part);
    }
    png_write_chunk(png, (png_const_bytep) "IEND", NULL, 0);
    png_destroy_write_struct(&png, &info);
    free(idat);
    *out = sink.buf;
    *len = sink.len;
    return CS_IMG_OK;
}

/* ---------------------------------------------------------------- resize */

/* One resampling tap pair along an axis: out = v[i0] * w0 + v[i1] * w1. */
typedef struct {
    int i0, i1;
    float w0, w1;
} lin_tap;

/* cv2 INTER_LINEAR coefficients, computed as OpenCV does (double position, float
 * fraction, clamped at the borders). */
static lin_tap linear_tap(int d, int s, int dn)
{
    double scale = 1.0 / ((double)dn / s);
    float f = (float)((d + 0.5) * scale - 0.5);
    int i = (int)floorf(f);
    f -= (float)i;
    if (i < 0) {
        i = 0;
        f = 0.f;
    }
    if (i >= s - 1) {
        i = s - 1;
        f = 0.f;
    }
    lin_tap t = {i, i + 1 < s ? i + 1 : s - 1, 1.f - f, f};
    return t;
}

/* Round to nearest, ties to even (lrintf's rounding), into an int; GCC's builtin
 * vectorises where lrintf's long does not. */
#if defined(__GNUC__) && !defined(__clang__)
#define ROUND_INT(v) __builtin_irintf(v)
#else
#define ROUND_INT(v) ((int)lrintf(v))
#endif

/* One source row resampled along x: out[dx * c + ch] = p0 * w0 + p1 * w1. */
static void bilinear_row(const void *src, int src_u8, size_t row, int c, const lin_tap *tx, int dw, float *out)
{
    const uint8_t *s8 = src;
    const float *sf = src;
    for (int dx = 0; dx < dw; dx++) {
        size_t a = row + (size_t)tx[dx].i0 * c, b = row + (size_t)tx[dx].i1 * c;
        for (int ch = 0; ch < c; ch++) {
            float p0 = src_u8 ? s8[a + ch] : sf[a + ch], p1 = src_u8 ? s8[b + ch] : sf[b + ch];
            out[(size_t)dx * c + ch] = p0 * tx[dx].w0 + p1 * tx[dx].w1;
        }
    }
}

/* Bilinear over interleaved samples (u8 or float in, u8 or float out). Separable, as
 * cv2's: each output row combines two source rows already resampled along x, which
 * are kept while consecutive output rows read them (an upscale reads each many
 * times); the same float operations in the same order as one pixel at a time. */
static void bilinear_core(const void *src, int src_u8, int sh, int sw, int c, void *dst,
                          int dst_u8, int dh, int dw)
{
    const size_t n = (size_t)dw * c;
    lin_tap *tx = malloc((size_t)dw * sizeof *tx);
    float *rows = malloc(2 * n * sizeof *rows);
    if (!tx || !rows) { /* one value at a time, with no buffers */
        free(tx);
        free(rows);
        for (int dy = 0; dy < dh; dy++) {
            lin_tap ty = linear_tap(dy, sh, dh);
            for (int dx = 0; dx < dw; dx++) {
                lin_tap one = linear_tap(dx, sw, dw);
                const uint8_t *s8 = src;
                const float *sf = src;
                const size_t r0 = (size_t)ty.i0 * sw * c, r1 = (size_t)ty.i1 * sw * c;
                for (int ch = 0; ch < c; ch++) {
                    const size_t a = (size_t)one.i0 * c + ch, b = (size_t)one.i1 * c + ch;
                    float p00 = src_u8 ? s8[r0 + a] : sf[r0 + a], p01 = src_u8 ? s8[r0 + b] : sf[r0 + b];
                    float p10 = src_u8 ? s8[r1 + a] : sf[r1 + a], p11 = src_u8 ? s8[r1 + b] : sf[r1 + b];
                    float h0 = p00 * one.w0 + p01 * one.w1, h1 = p10 * one.w0 + p11 * one.w1;
                    float v = h0 * ty.w0 + h1 * ty.w1;
                    size_t o = ((size_t)dy * dw + dx) * c + ch;
                    if (dst_u8) {
                        long r = lrintf(v);
                        ((uint8_t *)dst)[o] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                    } else {
                        ((float *)dst)[o] = v;
                    }
                }
            }
        }
        return;
    }
    for (int dx = 0; dx < dw; dx++) tx[dx] = linear_tap(dx, sw, dw);
    int held[2] = {-1, -1}; /* the source rows in rows[0..n) and rows[n..2n) */
    for (int dy = 0; dy < dh; dy++) {
        lin_tap ty = linear_tap(dy, sh, dh);
        const float *h[2];
        for (int k = 0; k < 2; k++) {
            int want = k ? ty.i1 : ty.i0, slot = held[0] == want ? 0 : held[1] == want ? 1 : -1;
            if (slot < 0) { /* replace the row the other tap does not use */
                int other = k ? ty.i0 : ty.i1;
                slot = held[0] == other ? 1 : 0;
                bilinear_row(src, src_u8, (size_t)want * sw * c, c, tx, dw, rows + slot * n);
                held[slot] = want;
            }
            h[k] = rows + slot * n;
        }
        const float w0 = ty.w0, w1 = ty.w1;
        if (dst_u8) {
            /* Clamped before rounding (the same bytes: the bounds are whole numbers), so
             * the int-valued rounding vectorises; NaN clamps to 0 as before. */
            uint8_t *d = (uint8_t *)dst + (size_t)dy * n;
            for (size_t i = 0; i < n; i++) {
                float v = h[0][i] * w0 + h[1][i] * w1;
                d[i] = (uint8_t)ROUND_INT(v > 0.f ? (v < 255.f ? v : 255.f) : 0.f);
            }
        } else {
            float *d = (float *)dst + (size_t)dy * n;
            for (size_t i = 0; i < n; i++) d[i] = h[0][i] * w0 + h[1][i] * w1;
        }
    }
    free(tx);
    free(rows);
}

/* Source interval [lo, hi) covered by output pixel d when shrinking s -> dn. */
static void area_range(int d, int s, int dn, double *lo, double *hi)
{
    double scale = (double)s / dn;
    *lo = d * scale;
    *hi = *lo + scale;
    if (*hi > s)
        *hi = s;
}

/* How much of source pixel i lies inside [lo, hi). */
static double area_weight(int i, double lo, double hi)
{
    double a = i > lo ? i : lo, b = i + 1 < hi ? i + 1 : hi;
    return b > a ? b - a : 0.0;
}

/* Box average over interleaved samples; only called when shrinking both axes. */
static void area_core(const void *src, int src_u8, int sh, int sw, int c, void *dst, int dst_u8,
                      int dh, int dw)
{
    const uint8_t *s8 = src;
    const float *sf = src;
    for (int dy = 0; dy < dh; dy++) {
        double ylo, yhi;
        area_range(dy, sh, dh, &ylo, &yhi);
        int y0 = (int)floor(ylo), y1 = (int)ceil(yhi);
        for (int dx = 0; dx < dw; dx++) {
            double xlo, xhi;
            area_range(dx, sw, dw, &xlo, &xhi);
            int x0 = (int)floor(xlo), x1 = (int)ceil(xhi);
            double area = (yhi - ylo) * (xhi - xlo);
            for (int ch = 0; ch < c; ch++) {
                double acc = 0.0;
                for (int y = y0; y < y1 && y < sh; y++) {
                    double wy = area_weight(y, ylo, yhi);
                    double row = 0.0;
                    for (int x = x0; x < x1 && x < sw; x++) {
                        size_t i = ((size_t)y * sw + x) * c + ch;
                        row += area_weight(x, xlo, xhi) * (src_u8 ? s8[i] : sf[i]);
                    }
                    acc += wy * row;
                }
                double v = acc / area;
                size_t o = ((size_t)dy * dw + dx) * c + ch;
                if (dst_u8) {
                    long r = lrint(v);
                    ((uint8_t *)dst)[o] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
                } else {
                    ((float *)dst)[o] = (float)v;
                }
            }
        }
    }
}

void cs_resize_bilinear_f32(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    bilinear_core(src, 0, sh, sw, 1, dst, 0, dh, dw);
}

void cs_resize_bilinear_f32_u8(const float *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw)
{
    bilinear_core(src, 0, sh, sw, c, dst, 1, dh, dw);
}

void cs_resize_area_f32(const float *src, int sh, int sw, float *dst, int dh, int dw)
{
    if (dh > sh || dw > sw)
        bilinear_core(src, 0, sh, sw, 1, dst, 0, dh, dw);
    else
        area_core(src, 0, sh, sw, 1, dst, 0, dh, dw);
}

int cs_image_resize_bilinear(const cs_image *src, int w, int h, cs_image *dst)
{
    if (!valid_image(src) || cs_image_alloc(dst, w, h, src->c) != CS_IMG_OK)
        return CS_IMG_NOMEM;
    bilinear_core(src->px, 1, src->h, src->w, src->c, dst->px, 1, h, w);
    return CS_IMG_OK;
}

int cs_image_resize_area(const cs_image *src, int w, int h, cs_image *dst)
{
    if (!valid_image(src) || cs_image_alloc(dst, w, h, src->c) != CS_IMG_OK)
        return CS_IMG_NOMEM;
    if (h > src->h || w > src->w)
        bilinear_core(src->px, 1, src->h, src->w, src->c, dst->px, 1, h, w);
    else
        area_core(src->px, 1, src->h, src->w, src->c, dst->px, 1, h, w);
    return CS_IMG_OK;
}

/* PIL's ImagingScaleAffine: position accumulated in double from step / 2. */
static void nearest_index(int s, int dn, int *idx)
{
    double step = (double)s / dn, pos = step * 0.5;
    for (int d = 0; d < dn; d++) {
        int i = pos < 0.0 ? 0 : (int)pos;
        idx[d] = i < s ? i : s - 1;
        pos += step;
    }
}

int cs_image_resize_nearest(const cs_image *src, int w, int h, cs_image *dst)
{
    if (!valid_image(src) || cs_image_alloc(dst, w, h, src->c) != CS_IMG_OK)
        return CS_IMG_NOMEM;
    int *xi = malloc(sizeof(int) * (size_t)w), *yi = malloc(sizeof(int) * (size_t)h);
    if (!xi || !yi) {
        free(xi);
        free(yi);
        cs_image_free(dst);
        return CS_IMG_NOMEM;
    }
    nearest_index(src->w, w, xi);
    nearest_index(src->h, h, yi);
    int c = src->c;
    for (int y = 0; y < h; y++) {
        const uint8_t *srow = src->px + (size_t)yi[y] * src->w * c;
        uint8_t *drow = dst->px + (size_t)y * w * c;
        for (int x = 0; x < w; x++)
            memcpy(drow + (size_t)x * c, srow + (size_t)xi[x] * c, (size_t)c);
    }
    free(xi);
    free(yi);
    return CS_IMG_OK;
}

/* ------------------------------------------------------------ conversion */

int cs_image_to_gray(const cs_image *src, cs_image *dst)
{
    if (!valid_image(src) || cs_image_alloc(dst, src->w, src->h, 1) != CS_IMG_OK)
        return CS_IMG_NOMEM;
    size_t n = (size_t)src->w * src->h;
    if (src->c == 1) {
        memcpy(dst->px, src->px, n);
        return CS_IMG_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const uint8_t *p = src->px + 3 * i;
        /* PIL's L24: 299/587/114 per mille scaled to 2^16, rounded. */
        dst->px[i] = (uint8_t)((p[0] * 19595u + p[1] * 38470u + p[2] * 7471u + 0x8000u) >> 16);
    }
    return CS_IMG_OK;
}

int cs_image_to_rgb(const cs_image *src, cs_image *dst)
{
    if (!valid_image(src) || cs_image_alloc(dst, src->w, src->h, 3) != CS_IMG_OK)
        return CS_IMG_NOMEM;
    size_t n = (size_t)src->w * src->h;
    if (src->c == 3) {
        memcpy(dst->px, src->px, n * 3);
        return CS_IMG_OK;
    }
    for (size_t i = 0; i < n; i++)
        dst->px[3 * i] = dst->px[3 * i + 1] = dst->px[3 * i + 2] = src->px[i];
    return CS_IMG_OK;
}
