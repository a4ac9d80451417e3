/*
 * image.h - 8-bit images: PNG/JPEG decoding of untrusted uploads, PNG encoding,
 * colour conversion and the resize filters the Keras/OpenCV pipelines use.
 *
 * Pixels are 8-bit, interleaved, row-major, no padding: px[(y * w + x) * c + ch],
 * with c = 1 (gray) or 3 (RGB). Float "planes" are one channel, row-major.
 *
 * Ownership: a cs_image filled by a function here owns `px` (malloc'd); release it
 * with cs_image_free(). A cs_image returned as a pointer (cs_image_new and the
 * drawing functions in draw.h) is released with cs_image_destroy().
 */
#ifndef CS_IMAGE_H
#define CS_IMAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int w, h, c;
    uint8_t *px;
} cs_image;

/* Return codes of the functions below. The HTTP layer maps them to statuses. */
enum {
    CS_IMG_OK = 0,
    CS_IMG_NOT_IMAGE, /* neither a PNG nor a JPEG signature, or empty (415) */
    CS_IMG_CORRUPT,   /* truncated or damaged data (422) */
    CS_IMG_TOO_LARGE, /* declared width * height above the limit (422) */
    CS_IMG_NOMEM,     /* out of memory (or a size that cannot be represented) */
    CS_IMG_TOO_COSTLY, /* decoding needs more work than allowed: time, JPEG scans (422) */
};

/* Limits used when a cs_image_limits field is 0. A real progressive JPEG has about
 * ten scans; each scan walks every block of the image again. */
#define CS_IMG_DEFAULT_MAX_PIXELS ((size_t)40000000)
#define CS_IMG_DEFAULT_MAX_SCANS 100

/* What one decode of an untrusted upload may cost. */
typedef struct {
    size_t max_pixels;  /* declared width * height; 0: CS_IMG_DEFAULT_MAX_PIXELS */
    double max_seconds; /* wall-clock time for this decode; 0: no limit */
    int max_scans;      /* JPEG scans; 0: CS_IMG_DEFAULT_MAX_SCANS */
} cs_image_limits;

/* Short stable name of a return code ("ok", "not_image", "corrupt", ...). */
const char *cs_image_status_name(int code);

/* Fills *img with a zeroed w x h x c image. CS_IMG_OK or CS_IMG_NOMEM (also for
 * non-positive sizes or c not in {1, 3}). The caller frees with cs_image_free. */
int cs_image_alloc(cs_image *img, int w, int h, int c);
/* Frees the pixels and zeroes the struct (not the struct itself). NULL is fine. */
void cs_image_free(cs_image *img);
/* Heap-allocated image with zeroed pixels, or NULL. Free with cs_image_destroy. */
cs_image *cs_image_new(int w, int h, int c);
/* Frees the pixels and the struct. NULL is fine. */
void cs_image_destroy(cs_image *img);

/*
 * Decodes a PNG or JPEG held in memory (format from the signature, not from any
 * name or content type). On CS_IMG_OK *out is a gray (c = 1) or RGB (c = 3) image
 * the caller frees with cs_image_free; on any other code *out is zeroed and err
 * (when not NULL) holds a one-line reason.
 *
 * max_pixels bounds the declared width * height, checked from the header before
 * any pixel memory is allocated (0 means CS_IMG_DEFAULT_MAX_PIXELS).
 *
 * PNG: palette and low bit depths are expanded, 16-bit samples keep their high
 * byte, interlaced images are supported, and alpha (or tRNS transparency) is
 * dropped, not composited: that is what PIL's convert("RGB") / convert("L") do in
 * Keras' load_img, so predictions match Keras for the same file.
 * JPEG: gray stays gray, YCbCr/RGB becomes RGB, CMYK/YCCK is converted to RGB
 * (Adobe inverted CMYK recognised). A truncated or damaged stream, which libjpeg
 * would only warn about and pad with gray, is reported as CS_IMG_CORRUPT.
 */
int cs_image_decode(const void *buf, size_t len, size_t max_pixels, cs_image *out, char *err,
                    size_t errlen);

/*
 * cs_image_decode with every limit (lim may be NULL for the defaults). Past the time
 * or the JPEG scan limit it stops and returns CS_IMG_TOO_COSTLY.
 *
 * The work is bounded by the image's size, not the file's: PNG chunks other than
 * IHDR, PLTE, tRNS, IDAT and IEND are skipped without inflating them, and reading
 * stops once the last row is decoded, so compressed data that would inflate past the
 * image (a "decompression bomb") is never inflated. The chunk structure and the CRCs
 * of critical chunks are checked over the whole file first (linear, no inflating),
 * so a file cut short or damaged after its pixel data is still CS_IMG_CORRUPT.
 *
 * consumed (may be NULL) receives how many bytes of buf the decoder itself read.
 */
int cs_image_decode_limited(const void *buf, size_t len, const cs_image_limits *lim,
                            cs_image *out, size_t *consumed, char *err, size_t errlen);

/* Width and height a PNG or JPEG declares in its header, without decoding it (a
 * JPEG's markers are parsed up to its frame header). CS_IMG_OK, CS_IMG_NOT_IMAGE or
 * CS_IMG_CORRUPT (with err). */
int cs_image_probe(const void *buf, size_t len, int *w, int *h, char *err, size_t errlen);

/* Encodes img as a PNG into a malloc'd buffer (*out, *len) the caller frees with
 * free(). Fast settings (SUB filter, libdeflate level 1): these images are made per
 * request. CS_IMG_OK, CS_IMG_NOMEM, or CS_IMG_CORRUPT when img is not valid. */
int cs_image_encode_png(const cs_image *img, uint8_t **out, size_t *len);

/*
 * Resizing into *dst (allocated here, caller frees with cs_image_free; dst must not
 * be src). All return CS_IMG_OK, or CS_IMG_NOMEM on allocation failure / bad size.
 *
 * nearest:  PIL's Image.resize(NEAREST), which Keras load_img(target_size=...) uses:
 *           source index = floor((d + 0.5) * src / dst), accumulated in double as
 *           PIL does.
 * bilinear: cv2.resize INTER_LINEAR: half-pixel centres, sample position
 *           (d + 0.5) * src / dst - 0.5 clamped to the edges; computed in float and
 *           rounded to nearest (OpenCV's 8-bit fixed-point path can differ by 1).
 * area:     cv2.resize INTER_AREA when shrinking: each output pixel is the mean of
 *           the source area it covers (fractional pixels weighted); when enlarging
 *           along either axis it falls back to bilinear.
 */
int cs_image_resize_nearest(const cs_image *src, int w, int h, cs_image *dst);
int cs_image_resize_bilinear(const cs_image *src, int w, int h, cs_image *dst);
int cs_image_resize_area(const cs_image *src, int w, int h, cs_image *dst);

/* One float plane, same semantics as cv2.resize on a float32 array (INTER_LINEAR,
 * INTER_AREA when shrinking both axes, else bilinear). src and dst must not
 * overlap. Sizes must be positive. */
void cs_resize_bilinear_f32(const float *src, int sh, int sw, float *dst, int dh, int dw);
void cs_resize_area_f32(const float *src, int sh, int sw, float *dst, int dh, int dw);
/* c interleaved float channels resized bilinearly as above, each value then rounded to
 * nearest and clamped to 0..255. */
void cs_resize_bilinear_f32_u8(const float *src, int sh, int sw, int c, uint8_t *dst, int dh, int dw);

/* Gray as PIL's convert("L"): ITU-R 601-2 luma, L = R*299/1000 + G*587/1000 +
 * B*114/1000, in PIL's 16-bit fixed point with rounding. A gray src is copied.
 * *dst is allocated here (cs_image_free). CS_IMG_OK or CS_IMG_NOMEM. */
int cs_image_to_gray(const cs_image *src, cs_image *dst);
/* RGB copy; gray is replicated into the three channels. *dst as above. */
int cs_image_to_rgb(const cs_image *src, cs_image *dst);

#endif
