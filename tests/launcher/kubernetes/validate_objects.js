// Validates rendered Kubernetes objects with an independent validator: the JSON schemas of the
// npm package kubernetes-models (generated from Kubernetes' OpenAPI spec), plus the API server's
// name rules that the schemas do not carry (DNS-1123 names, label keys and values).
//
// usage: node validate_objects.js NODE_MODULES_DIR FILE.json...   (each file: an array of objects)
// Prints one line per object and "N passed, M failed"; exits 1 when any object is invalid.
"use strict";
const path = require("path");
const fs = require("fs");

const modules = path.resolve(process.argv[2]);
const files = process.argv.slice(3);
const load = (p) => require(path.join(modules, "kubernetes-models", p));
const classes = {
  "v1/Pod": load("v1/Pod").Pod,
  "v1/Service": load("v1/Service").Service,
  "v1/ConfigMap": load("v1/ConfigMap").ConfigMap,
  "v1/Secret": load("v1/Secret").Secret,
  "v1/ServiceAccount": load("v1/ServiceAccount").ServiceAccount,
  "rbac.authorization.k8s.io/v1/Role": load("rbac.authorization.k8s.io/v1/Role").Role,
  "rbac.authorization.k8s.io/v1/RoleBinding": load("rbac.authorization.k8s.io/v1/RoleBinding").RoleBinding,
  "rbac.authorization.k8s.io/v1/ClusterRole": load("rbac.authorization.k8s.io/v1/ClusterRole").ClusterRole,
  "rbac.authorization.k8s.io/v1/ClusterRoleBinding": load("rbac.authorization.k8s.io/v1/ClusterRoleBinding").ClusterRoleBinding,
};

const dns1123Label = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const dns1123Subdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const labelValue = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const qualifiedName = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const configKey = /^[-._a-zA-Z0-9]+$/;

function nameRules(obj) {
  const errors = [];
  const m = obj.metadata || {};
  const name = m.name || "";
  if (obj.kind === "Service" || obj.kind === "Pod") {
    if (!dns1123Label.test(name) || name.length > 63) errors.push(`name "${name}" is not a DNS-1123 label`);
  } else if (!dns1123Subdomain.test(name) || name.length > 253) {
    errors.push(`name "${name}" is not a DNS-1123 subdomain`);
  }
  if (obj.kind === "Service" && !/^[a-z]/.test(name)) errors.push(`service name "${name}" must start with a letter (DNS-1035)`);
  for (const [k, v] of Object.entries(m.labels || {})) {
    if (!qualifiedName.test(k)) errors.push(`label key "${k}" is invalid`);
    if (typeof v !== "string" || !labelValue.test(v) || v.length > 63) errors.push(`label ${k}="${v}" is not a valid label value`);
  }
  for (const k of Object.keys(m.annotations || {})) {
    if (!qualifiedName.test(k)) errors.push(`annotation key "${k}" is invalid`);
  }
  if (obj.kind === "ConfigMap" || obj.kind === "Secret") {
    for (const k of Object.keys({ ...(obj.data || {}), ...(obj.binaryData || {}) })) {
      if (!configKey.test(k)) errors.push(`data key "${k}" is invalid`);
    }
  }
  if (obj.kind === "Pod") {
    const spec = obj.spec || {};
    if (spec.hostname && !dns1123Label.test(spec.hostname)) errors.push(`hostname "${spec.hostname}" is invalid`);
    if (spec.subdomain && !dns1123Label.test(spec.subdomain)) errors.push(`subdomain "${spec.subdomain}" is invalid`);
    const volumes = new Set((spec.volumes || []).map((v) => v.name));
    for (const c of spec.containers || []) {
      for (const vm of c.volumeMounts || []) {
        if (!volumes.has(vm.name)) errors.push(`container ${c.name} mounts unknown volume ${vm.name}`);
      }
    }
  }
  return errors;
}

let passed = 0, failed = 0;
for (const file of files) {
  const objects = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const obj of objects) {
    const id = `${path.basename(file)}: ${obj.kind}/${(obj.metadata || {}).name}`;
    const cls = classes[`${obj.apiVersion}/${obj.kind}`];
    const errors = [];
    if (!cls) {
      errors.push(`no validator for ${obj.apiVersion} ${obj.kind}`);
    } else {
      try {
        new cls(obj).validate();
      } catch (e) {
        errors.push(e.message);
      }
    }
    errors.push(...nameRules(obj));
    if (errors.length) {
      failed++;
      console.log(`FAIL ${id}\n  ${errors.join("\n  ")}`);
    } else {
      passed++;
      console.log(`ok   ${id}`);
    }
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
