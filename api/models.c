/*
 * models.c - the served models: the list with their status, and each one's summary in
 * the manner of Keras' model.summary().
 */
#include <stdlib.h>
#include <string.h>

#include "handlers.h"
#include "input.h"
#include "jobs.h"
#include "layer_ops.h"
#include "preprocess.h"
#include "registry.h"
#include "reply.h"

static json_t *shape_json(cs_shape s, int flat)
{
    /* Keras writes the batch dimension as None. */
    if (flat) return json_pack("[n,i]", s.h * s.w * s.c);
    return json_pack("[n,i,i,i]", s.h, s.w, s.c);
}

/* A flatten and what follows it are one-dimensional in Keras; flat[] is filled in
 * node order. */
static int is_flat(const cs_model *m, int i, const unsigned char *flat)
{
    const cs_layer *l = &m->layers[i];
    if (l->out.h != 1 || l->out.w != 1) return 0;
    return l->kind == CS_FLATTEN || (l->inputs[0] >= 0 && flat[l->inputs[0]]);
}

/* The names of the nodes a node reads ("input": the model's input). */
static json_t *inputs_json(const cs_model *m, const cs_layer *l)
{
    json_t *a = json_array();
    for (int k = 0; k < l->n_inputs; k++)
        json_array_append_new(a, json_string(l->inputs[k] >= 0 ? m->layers[l->inputs[k]].name : "input"));
    return a;
}

/* A node's parameter tensors: name, Keras shape, size, whether training changes it. */
static json_t *weights_json(const cs_layer *l)
{
    json_t *a = json_array();
    for (int j = 0; a && j < l->n_params; j++) {
        const cs_param *p = &l->params[j];
        json_t *shape = json_array();
        for (int d = 0; shape && d < p->ndim; d++) json_array_append_new(shape, json_integer(p->dims[d]));
        json_array_append_new(a, json_pack("{s:s,s:o,s:I,s:b}", "name", p->name, "shape", shape, "size",
                                           (json_int_t)p->size, "trainable", p->trainable));
    }
    return a;
}

static json_t *classes_json(const cs_model *m)
{
    json_t *a = json_array();
    for (int i = 0; i < m->n_classes; i++) json_array_append_new(a, json_string(m->class_names[i]));
    return a;
}

static json_t *gradcam_layer_json(const cs_model *m)
{
    int i = cs_model_last_conv_activation(m);
    return i >= 0 ? json_string(m->layers[i].name) : json_null();
}

/* What a served version says of itself in the list and the summary: its file and
 * format, where its labels come from, its preprocessing, whether it trains. */
static void describe_version(json_t *o, cs_served_model *s, const cs_model_version *v)
{
    const cs_model *m = v->model;
    char file[256];
    cs_served_file(s, file, sizeof file);
    json_object_set_new(o, "file", json_string(file));
    json_object_set_new(o, "format", json_string(v->format));
    json_object_set_new(o, "labels", json_string(v->labels));
    json_object_set_new(o, "preprocessing",
                        cs_preprocess_to_json(&m->preprocess, m->input.c, m->input.h, m->input.w));
    if (v->description[0]) json_object_set_new(o, "description", json_string(v->description));
    /* The notebook's network also trains from scratch without a file. */
    int trainable = s->trainable || v->trainable;
    json_object_set_new(o, "trainable", json_boolean(trainable));
    if (!trainable) json_object_set_new(o, "not_trainable_reason", json_string(v->train_why));
    json_object_set_new(o, "deletable", json_boolean(s->folder));
}

json_t *cs_model_entry_json(cs_served_model *s)
{
    char reason[512];
    int version, training;
    cs_model_state st = cs_served_state(s, reason, sizeof reason, &version, &training);
    json_t *o = json_pack("{s:s,s:s,s:b}", "name", s->name, "status", cs_model_state_word(st, training), "trainable",
                          s->trainable);
    if (!o) return NULL;
    if (reason[0]) json_object_set_new(o, "reason", json_string(reason));
    cs_model_version *v = cs_served_acquire(s, reason, sizeof reason);
    if (!v) {
        char file[256];
        cs_served_file(s, file, sizeof file);
        if (file[0]) json_object_set_new(o, "file", json_string(file));
        json_object_set_new(o, "deletable", json_boolean(s->folder));
        json_object_set_new(o, "version", json_null());
        return o;
    }
    const cs_model *m = v->model;
    describe_version(o, s, v);
    json_object_set_new(o, "version", json_integer(v->version));
    json_object_set_new(o, "input_shape", json_pack("[i,i,i]", m->input.h, m->input.w, m->input.c));
    json_object_set_new(o, "n_classes", json_integer(m->n_classes));
    json_object_set_new(o, "classes", classes_json(m));
    json_object_set_new(o, "params", json_integer((json_int_t)cs_model_param_count(m)));
    json_object_set_new(o, "test_accuracy",
                        m->meta.test_accuracy >= 0 ? cs_json_number(m->meta.test_accuracy) : json_null());
    json_object_set_new(o, "gradcam_layer", gradcam_layer_json(m));
    cs_version_release(v);
    return o;
}

/* GET /v1/models */
void cs_h_models_list(cs_req *req, cs_reply *rep)
{
    (void)req;
    json_t *list = json_array();
    for (int i = 0; i < cs_registry_count(); i++) {
        cs_served_model *s = cs_registry_at(i);
        if (!s) continue; /* removed */
        json_array_append_new(list, cs_model_entry_json(s));
    }
    cs_reply_json(rep, 200, json_pack("{s:o}", "models", list));
}

/* GET /v1/models/{model}  layers (name, type, output shape, params, config, weights), totals, accuracy,
 * history */
void cs_h_model_summary(cs_req *req, cs_reply *rep)
{
    cs_served_model *s;
    cs_model_version *v = cs_model_or_reply(req, rep, &s);
    if (!v) return;
    const cs_model *m = v->model;
    json_t *layers = json_array();
    size_t trainable = 0;
    unsigned char *flat = calloc((size_t)m->n_layers, 1);
    if (!flat) {
        json_decref(layers);
        cs_reply_nomem(rep, "cannot describe the model");
        cs_version_release(v);
        return;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const cs_layer *l = &m->layers[i];
        size_t p = cs_layer_param_count(l);
        trainable += cs_layer_trainable_count(l);
        flat[i] = (unsigned char)is_flat(m, i, flat);
        json_t *o = json_pack("{s:i,s:s,s:s,s:o,s:o,s:I,s:b}", "index", i, "name", l->name, "type",
                              cs_layer_kind_name(l->kind), "inputs", inputs_json(m, l), "output_shape",
                              shape_json(l->out, flat[i]), "params", (json_int_t)p, "spatial",
                              l->out.h > 1 && l->out.w > 1);
        /* What Netron lists for a node: its settings as the model file has them, and
         * its tensors' shapes. */
        json_object_set_new(o, "config", cs_layer_config_json(l));
        json_object_set_new(o, "weights", weights_json(l));
        if (l->n_params && l->params[0].ndim == 4) { /* a conv kind's (kh, kw, in, out) kernel */
            const int *d = l->params[0].dims;
            json_object_set_new(o, "filters", json_pack("{s:i,s:i,s:i}", "count", d[3], "size", d[0], "channels", d[2]));
        }
        json_array_append_new(layers, o);
    }
    free(flat);
    json_t *history = cs_history_json(m->meta.history, m->meta.n_history);
    size_t total = cs_model_param_count(m);
    json_t *doc = json_pack("{s:s,s:s,s:i,s:[i,i,i],s:o,s:I,s:I,s:I,s:o,s:o,s:o,s:o,s:i}", "name", s->name, "arch",
                            m->arch, "version", v->version, "input_shape", m->input.h, m->input.w, m->input.c,
                            "layers", layers, "total_params", (json_int_t)total, "trainable_params",
                            (json_int_t)trainable, "non_trainable_params", (json_int_t)(total - trainable),
                            "test_accuracy", m->meta.test_accuracy >= 0 ? cs_json_number(m->meta.test_accuracy) : json_null(),
                            "trained_at", m->meta.trained_at[0] ? json_string(m->meta.trained_at) : json_null(),
                            "history", history, "gradcam_layer", gradcam_layer_json(m),
                            "n_classes", m->n_classes);
    /* Version numbers count within one process; the checksum names the parameters
     * themselves, so replicas behind a balancer can be compared. */
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", (unsigned)v->crc);
    json_object_set_new(doc, "checksum", json_string(crc));
    if (m->meta.epochs > 0)
        json_object_set_new(doc, "training", json_pack("{s:i,s:i,s:i,s:i,s:f,s:I}", "epochs", m->meta.epochs, "batch_size",
                                                      m->meta.batch_size, "train_images", m->meta.train_images,
                                                      "test_images", m->meta.test_images,
                                                      "learning_rate", (double)m->meta.learning_rate, "seed",
                                                      (json_int_t)m->meta.seed));
    json_object_set_new(doc, "classes", classes_json(m));
    describe_version(doc, s, v);
    cs_version_release(v);
    cs_reply_json(rep, 200, doc);
}
