/*
 * make_seeds.c - writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/),
 * small valid inputs of every kind each harness reads, for libFuzzer to start from:
 *   cc -Icore tests/fuzz/make_seeds.c build/libcore.a ... && ./a.out tests/fuzz/corpus
 * (the Makefile's link line for a core test works). Run from the repository root. The
 * Keras HDF5 seed is too large to keep: `make fuzz` exports it from models/fmnist.csm;
 * tests/fuzz/corpus/keras_h5 holds inputs the fuzzer found, kept as regressions.
 */
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h, which needs FILE and size_t */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include <jpeglib.h>

#include "image.h"
#include "model_file.h"
#include "model_load.h"

static const char *root;

static void put(const char *sub, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", root, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static unsigned char *jpeg(int w, int h, int comps, J_COLOR_SPACE cs, int progressive, unsigned long *len)
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
    jpeg_set_quality(&c, 75, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t row[64 * 4];
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * comps; x++) row[x] = (uint8_t)(x * 9 + c.next_scanline * 13);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    return out;
}

static uint8_t *png(int w, int h, int c, size_t *len)
{
    cs_image img;
    if (cs_image_alloc(&img, w, h, c) != CS_IMG_OK) exit(1);
    for (size_t i = 0; i < (size_t)w * h * c; i++) img.px[i] = (uint8_t)(i * 37);
    uint8_t *out;
    if (cs_image_encode_png(&img, &out, len) != CS_IMG_OK) exit(1);
    cs_image_free(&img);
    return out;
}

int main(int argc, char **argv)
{
    root = argc > 1 ? argv[1] : "tests/fuzz/corpus";
    mkdir(root, 0755);
    /* images */
    size_t n;
    unsigned long jn;
    uint8_t *p = png(8, 6, 3, &n);
    put("image", "rgb-8x6.png", p, n);
    free(p);
    p = png(5, 7, 1, &n);
    put("image", "gray-5x7.png", p, n);
    unsigned char *j = jpeg(16, 8, 3, JCS_RGB, 0, &jn);
    put("image", "rgb-16x8.jpg", j, jn);
    free(j);
    j = jpeg(16, 16, 3, JCS_RGB, 1, &jn);
    put("image", "progressive-16x16.jpg", j, jn);
    free(j);
    j = jpeg(8, 8, 1, JCS_GRAYSCALE, 0, &jn);
    put("image", "gray-8x8.jpg", j, jn);
    free(j);
    j = jpeg(8, 8, 4, JCS_CMYK, 0, &jn);
    put("image", "cmyk-8x8.jpg", j, jn);
    /* a form with that CMYK JPEG and the gray PNG: byte 0 is the boundary's length - 1,
     * then the boundary as indices into the harness's boundary alphabet */
    {
        static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";
        const char *b = "XyZ42";
        size_t bl = strlen(b), cap = 4096 + jn + n, k = 0;
        uint8_t *form = malloc(cap);
        form[k++] = (uint8_t)(bl - 1);
        for (size_t i = 0; i < bl; i++) form[k++] = (uint8_t)(strchr(bchars, b[i]) - bchars);
        k += (size_t)sprintf((char *)form + k, "--%s\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n"
                                               "Content-Type: image/jpeg\r\n\r\n", b);
        memcpy(form + k, j, jn), k += jn;
        k += (size_t)sprintf((char *)form + k, "\r\n--%s\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n"
                                               "--%s\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n", b, b);
        memcpy(form + k, p, n), k += n;
        k += (size_t)sprintf((char *)form + k, "\r\n--%s--\r\n", b);
        put("multipart", "two-images", form, k);
        free(form);
    }
    free(j);
    free(p);
    /* query strings: byte 0 picks the route (see fuzz_query.c) */
    const char *queries[] = {"\x00" "count=5&cols=3&scale=4&channel=0&norm=filter",
                             "\x01" "sample=test:4&count=8&cols=4&scale=2",
                             "\x02" "sample=test:18&format=json&class=Bag&score=probability&alpha=0.5",
                             "\x02" "sample=test:18&layer=leaky_re_lu_1&size=64&format=heatmap",
                             "\x03" "sample=test:1&top_k=3",
                             "\x04" "split=train&offset=5&limit=25",
                             "\x05" "scale=4"};
    for (size_t i = 0; i < sizeof queries / sizeof queries[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "q%zu", i);
        put("query", name, queries[i], 1 + strlen(queries[i] + 1));
    }
    /* training bodies */
    const char *bodies[] = {"{}", "{\"epochs\": 2, \"train_limit\": 2000, \"test_limit\": 500, \"seed\": 7}",
                            "{\"from\": \"current\", \"learning_rate\": 0.01, \"batch_size\": 64}",
                            "{\"epochs\": 1, \"batch_size\": 1, \"train_limit\": 100}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "b%zu.json", i);
        put("train_json", name, bodies[i], strlen(bodies[i]));
    }
    /* IDX files: byte 0 is the number of dimensions - 1, then the file */
    {
        uint8_t labels[1 + 8 + 5] = {0, 0, 0, 8, 1, 0, 0, 0, 5, 0, 1, 2, 3, 9};
        put("idx", "labels", labels, sizeof labels);
        uint8_t images[1 + 16 + 12] = {2, 0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 2};
        for (int i = 0; i < 12; i++) images[17 + i] = (uint8_t)(i * 20);
        put("idx", "images", images, sizeof images);
        uint8_t gz[256];
        uLongf gl = sizeof gz - 1;
        z_stream z = {0};
        deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY); /* gzip wrapper */
        z.next_in = images + 1;
        z.avail_in = sizeof images - 1;
        z.next_out = gz + 1;
        z.avail_out = (uInt)gl;
        deflate(&z, Z_FINISH);
        gz[0] = 2;
        put("idx", "images.gz", gz, 1 + z.total_out);
        deflateEnd(&z);
    }
    /* model files: the ONNX test models, saved as .csm */
    const char *onnx[] = {"flatten_cnn", "reshape_cnn"};
    for (int i = 0; i < 2; i++) {
        char in[256], out[512], err[300];
        snprintf(in, sizeof in, "tests/data/onnx/%s.onnx", onnx[i]);
        cs_model *m = cs_model_load_any(in, err, sizeof err);
        if (!m) {
            fprintf(stderr, "%s: %s\n", in, err);
            return 1;
        }
        snprintf(out, sizeof out, "%s/model_file", root);
        mkdir(out, 0755);
        snprintf(out, sizeof out, "%s/model_file/%s.csm", root, onnx[i]);
        if (cs_model_save(m, out, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        cs_model_free(m);
    }
    return 0;
}
