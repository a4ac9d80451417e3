/*
 * fuzz_image.c - libFuzzer entry for image decoding (PNG and JPEG, whichever the bytes
 * say): any bytes must give an image or a reason, within the limits an upload gets,
 * never a crash, a leak or a read out of bounds. A decoded image is checked against
 * what its header declared and turned into both models' inputs, as a request would.
 * Built and run by `make fuzz` (clang, -fsanitize=fuzzer,address,undefined).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "image.h"
#include "preprocess.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    int pw = 0, ph = 0;
    int probed = cs_image_probe(data, size, &pw, &ph, err, sizeof err);
    if (probed != CS_IMG_OK && !err[0]) abort();
    cs_image img;
    cs_image_limits lim = {.max_pixels = (size_t)1 << 20, .max_seconds = 5};
    err[0] = 0;
    int rc = cs_image_decode_limited(data, size, &lim, &img, NULL, err, sizeof err);
    if (rc != CS_IMG_OK) {
        if (!err[0] || img.px) abort(); /* every refusal says why and leaves nothing */
        return 0;
    }
    /* What was decoded is what the header declared. */
    if (probed != CS_IMG_OK || img.w != pw || img.h != ph || (img.c != 1 && img.c != 3)) abort();
    static float gray[28 * 28], rgb[224 * 224 * 3];
    if (cs_preprocess_image("fmnist", &img, 28, 28, 1, gray, err, sizeof err) != 0) abort();
    if (cs_preprocess_image("vgg16", &img, 224, 224, 3, rgb, err, sizeof err) != 0) abort();
    cs_image_free(&img);
    return 0;
}
