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
 * The models folder: every .csm, .h5, .hdf5, .keras and .onnx file in it is served under
 * its file name without the extension, with its sidecar NAME.json (labels and
 * preprocessing, sidecar.h) applied. cs_registry_reload_changed (the watcher, once a
 * second) serves files added since, drops models whose files were removed and re-reads
 * files and sidecars that changed. Two files of one name: the .csm wins (a training
 * job's result is saved as NAME.csm beside the file it started from), then .keras,
 * .h5, .hdf5, .onnx. The notebook's fmnist (fmnist.csm) and vgg16 keep their names.
 *
 * A served model's slot lives as long as the process: its name never changes once
 * given, a removed model's slot is marked removed (not found, not listed) and comes
 * back when a file of that name does, so a pointer to a slot never dangles.
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
    int precision;             /* of every model's inference unless its sidecar says otherwise:
                                  a cs_precision (bf16_plan.h), fp32 by default */
} cs_registry_config;

typedef enum { CS_MODEL_LOADING, CS_MODEL_READY, CS_MODEL_UNAVAILABLE } cs_model_state;

#define CS_EXEC_POOL 64
/* Model names a process serves at most (removed ones included). */
#define CS_REGISTRY_MAX 256

typedef struct cs_model_version {
    atomic_int refs;
    int version;     /* a trainable model's kept version (versions.h), else 1, 2, ... within this process */
    uint32_t crc;    /* CRC-32 of the parameters: ETags that survive restarts */
    cs_model *model; /* read-only while served */
    char format[8];  /* the file it was read from: "csm", "onnx", "h5", "keras" */
    char labels[16]; /* where the class names come from: "model" (the file), "sidecar",
                        "imagenet" (1000 classes, the class index), "numbered" */
    char description[256]; /* the sidecar's, or "" */
    int trainable;         /* a training job can train it (cs_train_check) */
    char train_why[200];   /* why not, when not */
    char precision[8];     /* of its inference passes: "fp32" or "bf16" (bf16_plan.h) */
    char precision_source[16]; /* who asked for it: "sidecar", "--precision" or "default" */
    char precision_note[400];  /* what runs bf16 here, or why bf16 was refused; "" for fp32 asked */
    pthread_mutex_t pool_lock;
    pthread_cond_t pool_free; /* an exec came back */
    int n_pool, n_out;        /* execs kept, execs lent */
    int max_out;              /* execs lent at once at most, from the memory limit (0: no cap) */
    cs_exec *pool[CS_EXEC_POOL];
} cs_model_version;

typedef struct cs_served_model {
    char name[32];   /* fixed once the slot is listed */
    char path[1024]; /* the model file, or VGG16's weights file; guarded by lock (a trained
                        import moves to NAME.csm) */
    int trainable;   /* the notebook's network: trainable from scratch even without a file */
    int required;    /* /readyz fails while it is not ready */
    int folder;      /* a file of the models folder other than fmnist.csm: dropped with its file */
    int removed;     /* its file went (guarded by lock) */
    pthread_mutex_t lock;
    cs_model_state state;
    char reason[512]; /* why unavailable or loading */
    int training;     /* a job for it is queued or running */
    int publishing;   /* a job is saving the file it will serve next */
    cs_model_version *current;
    struct stat seen; /* the model file as last read or written here (st_ino 0: none) */
    char store[1024]; /* its kept versions (versions.h), "" when it keeps none */
    int keep;         /* how many */
    struct stat sidecar_seen; /* NAME.json likewise */
} cs_served_model;

int cs_registry_start(const cs_registry_config *cfg, char *err, size_t errlen);
void cs_registry_stop(void);

/* Slots, removed ones included: cs_registry_at gives NULL for those. */
int cs_registry_count(void);
cs_served_model *cs_registry_at(int i);
/* NULL when no model has that name (404). */
cs_served_model *cs_registry_find(const char *name);

/* 1 when name may name a served model: letters, digits, '_', '-' and '.', not starting
 * with a dot, at most 31 characters. */
int cs_registry_name_ok(const char *name);

/* The file the model is served from, without its folder ("resnet.onnx"). */
void cs_served_file(cs_served_model *s, char *file, size_t len);

/* A reference to the current version, or NULL with the reason it is unavailable (503). */
cs_model_version *cs_served_acquire(cs_served_model *s, char *reason, size_t len);
void cs_version_release(cs_model_version *v);
/* "precision bf16 (sidecar): what runs it" or why it was refused, for the log; "" when
 * nothing asked for another precision than the default fp32. */
void cs_version_precision_text(const cs_model_version *v, char *out, size_t len);

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

/* Saves m atomically to the model's file (NAME.csm beside it for a model read from
 * another format), then makes it, with the sidecar applied, the current version (takes
 * ownership of m on success). -1 with err when the file cannot be written or the model
 * was removed meanwhile. */
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
/* Looks at the models folder: serves model files added since, drops the models whose
 * files went, and re-reads each model's file or sidecar when it changed on disk since
 * this process last read or wrote it (another replica's training job, a `convscope
 * train` run, a copy into the shared folder). A valid file with other parameters or
 * another sidecar becomes the next version; a corrupt, truncated or mismatched one is
 * refused and the current version stays (a model serving none is unavailable with
 * the reason). Returns 1 when something changed, -1 when a changed file was refused,
 * 0 otherwise; msg says what happened ("; " between several). */
int cs_registry_reload_changed(char *msg, size_t len);

/* A model file sent to POST /v1/models. */
typedef struct {
    const char *name;      /* the name to serve it under */
    const char *ext;       /* its format: ".onnx", ".h5", ".hdf5", ".keras" or ".csm" */
    const void *data;      /* the file's bytes */
    size_t len;
    const char *sidecar;   /* NAME.json to write beside it (labels, preprocessing), or NULL */
    size_t sidecar_len;
} cs_model_upload;

/* Checks the file by loading it (with the sidecar, or the NAME.json already in the
 * folder) from a temporary file in the models folder, then renames the sidecar and
 * the file into place and serves the model, so nothing is listed before it was read
 * and a refused upload leaves nothing behind. 0 with the slot in *out, or the status
 * with why: 400 bad name, 409 name taken (or fmnist, vgg16), 415 not a model format,
 * 422 the file or the sidecar refused, 503 not enough memory to read it, 500 the
 * folder not writable. */
int cs_registry_add(const cs_model_upload *u, cs_served_model **out, char *why, size_t len);

/* Removes a model of the folder: every file of its name (any format) and its
 * sidecar; their names, space-separated, go to deleted. 0, or 404 unknown, 403 the
 * notebook's fmnist and vgg16 (not deleted over the API), 409 a training job holds
 * it, 500 with why. */
int cs_registry_remove(const char *name, char *deleted, size_t deleted_len, char *why, size_t len);

/* Marks a training job as holding the model (1) or not (0). Returns 0, or -1 when
 * setting 1 and another job already holds it. */
int cs_served_set_training(cs_served_model *s, int on);

#endif
