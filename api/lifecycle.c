/*
 * lifecycle.c - what the API keeps between requests, started and stopped in order:
 * models first (requests need them), then on the way out jobs before models (a job
 * publishes into the registry) and the datasets last.
 */
#include "api.h"
#include "data.h"
#include "jobs.h"
#include "registry.h"
#include "reply.h"

int cs_api_start(const struct cs_registry_config *models, char *err, size_t errlen)
{
    cs_reply_track_json_allocations();
    return cs_registry_start(models, err, errlen);
}

void cs_api_stop(void)
{
    cs_jobs_stop();
    cs_registry_stop();
    cs_data_free_all();
}
