/*
 * registry.h - the models the service serves, each as a sequence of versions.
 *
 * A request takes a reference to the model's current version (cs_served_acquire) and
 * releases it when done (cs_version_release); a version is freed when the last
 * reference goes, so a request in flight finishes on the model it started with while
 * a finished training job publishes the next version (saved atomically first).
 *
 * Each version also keeps a small pool of execution contexts (cs_exec): a request
 * borrows one and gives it back, so steady traffic allocates nothing per request.
 *
 * Thread-safety: every function may be called from any thread.
 */
#ifndef CS_API_REGISTRY_H
#define CS_API_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include <jansson.h>

#include "exec.h"
#include "model.h"

typedef struct cs_registry_config {
    const char *models_dir;    /* holds fmnist.csm; may hold the VGG16 weights and ONNX models */
    const char *vgg16_weights; /* explicit weights file, or NULL to search */
    const char *class_index;   /* imagenet_class_index.json, or NULL to search */
    int load_vgg16;            /* 0: VGG16 stays unavailable (saves 0.5 GB) */
    int max_running;           /* passes computed at once per version (0: no limit) */
    int keep_versions;         /* versions of a trainable model kept in its store (0: the default) */
} cs_registry_config;

typedef enum { CS_MODEL_LOADING, CS_MODEL_READY, CS_MODEL_UNAVAILABLE } cs_model_state;

#define CS_EXEC_POOL 64

typedef struct cs_model_version {
    atomic_int refs;
    int version;     /* a trainable model's kept version (versions.h), else 1, 2, ... within this process */
    uint32_t crc;    /* CRC-32 of the parameters: ETags that survive restarts */
    cs_model *model; /* read-only while served */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_free; /* an exec came back */
    int n_pool, n_out;        /* execs kept, execs lent */
    int max_out;              /* execs lent at once at most, from the memory limit (0: no cap) */
    cs_exec *pool[CS_EXEC_POOL];
} cs_model_version;

typedef struct cs_served_model {
    char name[32];
    char path[1024]; /* the model file (fmnist) or the weights file (vgg16) */
    int trainable;   /* a training job may replace it */
    int required;    /* /readyz fails while it is not ready */
    int imported;    /* read from a file of another format (ONNX) in the models folder */
    pthread_mutex_t lock;
    cs_model_state state;
    char reason[512]; /* why unavailable or loading */
    int training;     /* a job for it is queued or running */
    int publishing;   /* a job is saving the file it will serve next */
    cs_model_version *current;
    struct stat seen; /* the model file as last read or written here (st_ino 0: none) */
    char store[1024]; /* its kept versions (versions.h), "" when it keeps none */
    int keep;         /* how many */
} cs_served_model;

int cs_registry_start(const cs_registry_config *cfg, char *err, size_t errlen);
void cs_registry_stop(void);

int cs_registry_count(void);
cs_served_model *cs_registry_at(int i);
/* NULL when no model has that name (404). */
cs_served_model *cs_registry_find(const char *name);

/* A reference to the current version, or NULL with the reason it is unavailable (503). */
cs_model_version *cs_served_acquire(cs_served_model *s, char *reason, size_t len);
void cs_version_release(cs_model_version *v);

/* State, reason and version number under the lock, for listings. */
cs_model_state cs_served_state(cs_served_model *s, char *reason, size_t len, int *version,
                               int *training);

/* "ready", "training", "loading" or "unavailable", as the listings say it. */
const char *cs_model_state_word(cs_model_state st, int training);

/* An execution context for one image at a time; give it back with cs_version_exec_put.
 * Waits while max_running are lent out: however many connections are open, only that
 * many passes run (and hold activations) at once. NULL when out of memory. */
cs_exec *cs_version_exec_get(cs_model_version *v);
void cs_version_exec_put(cs_model_version *v, cs_exec *e);

/* Saves m atomically to the model's file, then makes it the current version (takes
 * ownership of m on success). -1 with err when the file cannot be written. */
int cs_served_publish(cs_served_model *s, cs_model *m, char *err, size_t errlen);
/* The same for a model that keeps versions: m is first kept in the store with `record`
 * (borrowed; NULL: what the model's metadata says), which gives the version its
 * number; a version that cannot be kept is not served either. */
int cs_served_publish_run(cs_served_model *s, cs_model *m, json_t *record, char *err, size_t errlen);
/* Serves kept version n again (rollback, or forward again): its file is checked,
 * saved as the served file and published under its own number. Returns 0, or the
 * HTTP status of the problem (404 not kept, 409 the model keeps no versions, 500)
 * with err. */
int cs_served_rollback(cs_served_model *s, int n, char *err, size_t errlen);
/* Re-reads each trainable model's file when it changed on disk since this process last
 * read or wrote it (another replica's training job, or a `convscope train` run, wrote
 * into the shared models folder). A valid file with other parameters becomes the next
 * version; a corrupt, truncated or mismatched one is refused and the current version
 * stays. Returns 1 when a new version was published, -1 when a changed file was
 * refused, 0 otherwise; msg says what happened. */
int cs_registry_reload_changed(char *msg, size_t len);

/* Marks a training job as holding the model (1) or not (0). Returns 0, or -1 when
 * setting 1 and another job already holds it. */
int cs_served_set_training(cs_served_model *s, int on);

#endif
