/*
 * fuzz_train_json.c - libFuzzer entry for the body of POST /v1/models/{model}/train:
 * any bytes must be a job within the ceilings or a 400 with the error shape, never a
 * crash or a leak. Built and run by `make fuzz`.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobs.h"
#include "reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_req req;
    memset(&req, 0, sizeof req);
    req.body = data;
    req.body_len = size;
    cs_reply rep;
    memset(&rep, 0, sizeof rep);
    cs_train_request tr;
    memset(&tr, 0xff, sizeof tr);
    int train_images = size ? 1 + data[0] * 250 : 60000; /* what a smaller data set would hold */
    if (cs_train_request_or_reply(&req, &rep, train_images, &tr)) {
        const cs_train_config cfg = tr.cfg;
        const int from_current = tr.from_current;
        long images = cfg.train_limit > 0 && cfg.train_limit < train_images ? cfg.train_limit : train_images;
        long long steps = (long long)cfg.epochs * ((images + cfg.batch_size - 1) / cfg.batch_size);
        if (rep.status || cfg.epochs < 1 || cfg.epochs > CS_JOB_MAX_EPOCHS || cfg.batch_size < 1 ||
            !(cfg.learning_rate > 0 && cfg.learning_rate <= 10) || steps > CS_JOB_MAX_STEPS || cfg.train_limit < 0 ||
            cfg.test_limit < 0 || (from_current != 0 && from_current != 1) ||
            (tr.snapshots != 0 && tr.snapshots != 1))
            abort();
    } else if ((rep.status != 400 && rep.status != 503) || !rep.body ||
               !memmem(rep.body, rep.len, "\"error\"", 7)) {
        abort();
    }
    cs_reply_clear(&rep);
    return 0;
}
