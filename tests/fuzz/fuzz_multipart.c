/*
 * fuzz_multipart.c - libFuzzer entry for image uploads as forms, through the whole
 * service: the bytes are a multipart/form-data body (its first byte says how many of
 * the following make the boundary) posted to /v1/models/fmnist/predict. Every body
 * must get an answer, and never a 500: a form is read (400 when malformed, 413 when too
 * large), its `image` parts checked and decoded (415, 422), and the model run (200).
 * Run from the repository root (it serves models/fmnist.csm). Built by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>

#include "inproc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    inproc_start();
    if (size < 1) return 0;
    /* RFC 2046: 1 to 70 characters from a small set. */
    static const char bchars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=?";
    size_t blen = 1 + data[0] % 70;
    if (size < 1 + blen) return 0;
    char boundary[72];
    for (size_t i = 0; i < blen; i++) boundary[i] = bchars[data[1 + i] % (sizeof bchars - 1)];
    boundary[blen] = 0;
    const uint8_t *body = data + 1 + blen;
    size_t len = size - 1 - blen;
    char head[512];
    snprintf(head, sizeof head,
             "POST /v1/models/fmnist/predict?top_k=1 HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
             "Content-Type: multipart/form-data; boundary=%s\r\nContent-Length: %zu\r\n\r\n",
             boundary, len);
    char *answer = NULL;
    int st = inproc_request(head, body, len, &answer, NULL);
    if (st == 0) { /* no answer: once more, so a busy loopback is not taken for a hang */
        free(answer);
        st = inproc_request(head, body, len, &answer, NULL);
    }
    if (st != 200 && st != 400 && st != 413 && st != 415 && st != 422) {
        fprintf(stderr, "fuzz_multipart: status %d: %.300s\n", st, answer ? answer : "");
        abort();
    }
    free(answer);
    return 0;
}
