#!/usr/bin/env node
// Fetch one tensor from initserve twice — as raw little-endian float32 bytes and as JSON —
// and check that both agree, value for value, and match any expected values given.
// Plain `fetch` (Node.js >= 18), no dependencies.
//
//   node fetch_tensor.mjs [BASE_URL] [--method xavier_uniform] [--shape 256,128] [--seed 1]
//                         [--name fc1.weight] [--param gain=2 ...] [--expect INDEX=VALUE ...]
//
// BASE_URL defaults to $INITSERVE_URL, then http://127.0.0.1:8000. --expect compares the element
// at a row-major flat INDEX with VALUE rounded to float32 (Math.fround), exactly; INITSERVE_EXPECT
// may hold more, comma-separated ("0=0.1,5=-0.25"). Exit status: 0 when every check passes,
// 1 on a mismatch or an HTTP/network error, 2 on bad arguments.

import { parseArgs } from "node:util";

const USAGE = "usage: node fetch_tensor.mjs [BASE_URL] [--method M] [--shape 2,3] [--seed N] [--name S] " +
  "[--param key=value ...] [--expect index=value ...]";

class Mismatch extends Error {}

function usage(message) {
  console.error(`fetch_tensor: ${message}\n${USAGE}`);
  process.exit(2);
}

function parseOptions(argv) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        method: { type: "string", default: "xavier_uniform" },
        shape: { type: "string", default: "256,128" },
        seed: { type: "string", default: "1" },
        name: { type: "string", default: "" },
        param: { type: "string", multiple: true, default: [] },
        expect: { type: "string", multiple: true, default: [] },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    usage(error.message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (positionals.length > 1) usage(`one BASE_URL expected, got ${positionals.length}`);
  const base = (positionals[0] ?? process.env.INITSERVE_URL ?? "http://127.0.0.1:8000").replace(/\/+$/, "");

  const shape = values.shape.trim() === "" ? [] : values.shape.split(",").map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) usage(`invalid --shape ${values.shape}`);
  if (!/^\d+$/.test(values.seed)) usage(`invalid --seed ${values.seed}`);

  const params = {};
  for (const item of values.param) {
    const at = item.indexOf("=");
    if (at <= 0) usage(`invalid --param ${item} (key=value)`);
    const text = item.slice(at + 1);
    let value;
    try {
      value = JSON.parse(text); // numbers, booleans, lists; anything else is a string
    } catch {
      value = text;
    }
    params[item.slice(0, at)] = value;
  }

  const expected = [];
  const fromEnv = (process.env.INITSERVE_EXPECT ?? "").split(",").filter((s) => s.trim() !== "");
  for (const item of [...values.expect, ...fromEnv]) {
    const [index, value, ...rest] = item.split("=");
    if (rest.length || !/^\d+$/.test(index?.trim() ?? "") || value === undefined || Number.isNaN(Number(value))) {
      usage(`invalid expectation ${item} (index=value)`);
    }
    expected.push({ index: Number(index), text: value.trim(), value: Math.fround(Number(value)) });
  }
  return { base, method: values.method, shape, seed: values.seed, name: values.name, params, expected };
}

async function request(url, init) {
  const response = await fetch(url, init);
  if (!response.ok) {
    let detail = await response.text();
    try {
      detail = JSON.parse(detail).detail ?? detail; // application/problem+json names the field and value
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`HTTP ${response.status} from ${url}: ${detail}`);
  }
  return response;
}

// GET /v1/tensor?…&format=raw: the little-endian bytes, shape and dtype in headers.
async function fetchRaw(opts) {
  const query = new URLSearchParams({
    method: opts.method, shape: opts.shape.join(","), seed: opts.seed, dtype: "float32", format: "raw",
  });
  if (opts.name) query.set("name", opts.name);
  for (const [key, value] of Object.entries(opts.params)) {
    query.set(key, typeof value === "string" ? value : JSON.stringify(value));
  }
  const url = `${opts.base}/v1/tensor?${query}`;
  const response = await request(url);
  const shapeHeader = response.headers.get("x-initserve-shape") ?? "";
  const dtype = response.headers.get("x-initserve-dtype");
  const shape = shapeHeader === "" ? [] : shapeHeader.split(",").map(Number);
  if (dtype !== "float32") throw new Mismatch(`raw: X-Initserve-Dtype is ${dtype}, expected float32`);
  const bytes = new DataView(await response.arrayBuffer());
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== count * 4) {
    throw new Mismatch(`raw: ${bytes.byteLength} bytes for shape [${shape}] (expected ${count * 4})`);
  }
  const data = new Float32Array(count);
  for (let i = 0; i < count; i++) data[i] = bytes.getFloat32(4 * i, true); // little-endian on any host
  return { url, shape, dtype, data, version: response.headers.get("x-initserve-algorithm-version") };
}

// POST /v1/tensor?format=json: the same spec as a JSON body; data flat, row-major.
async function fetchJson(opts) {
  const url = `${opts.base}/v1/tensor?format=json`;
  const spec = { method: opts.method, shape: opts.shape, dtype: "float32", ...opts.params };
  if (opts.name) spec.name = opts.name;
  // seeds go up to 2^64 - 1, beyond a JS number's exact integers: write the validated digits as they are
  const body = `{"seed": ${opts.seed}, ${JSON.stringify(spec).slice(1)}`;
  const response = await request(url, { method: "POST", headers: { "content-type": "application/json" }, body });
  return { url, ...(await response.json()) };
}

const sameShape = (a, b) => a.length === b.length && a.every((d, i) => d === b[i]);
const show = (shape) => `[${shape.join(", ")}]`;

async function main() {
  const opts = parseOptions(process.argv.slice(2));
  const raw = await fetchRaw(opts);
  const json = await fetchJson(opts);
  const problems = [];

  console.log(`raw:  shape ${show(raw.shape)} ${raw.dtype}, ${raw.data.length} values (algorithm ${raw.version})`);
  console.log(`json: shape ${show(json.shape)} ${json.dtype}, ${json.data.length} values (algorithm ${json.algorithm_version})`);
  if (!sameShape(raw.shape, opts.shape)) problems.push(`raw shape ${show(raw.shape)} != requested ${show(opts.shape)}`);
  if (!sameShape(json.shape, opts.shape)) problems.push(`json shape ${show(json.shape)} != requested ${show(opts.shape)}`);
  if (json.dtype !== "float32") problems.push(`json dtype ${json.dtype} != float32`);
  if (json.data.length !== raw.data.length) {
    problems.push(`json has ${json.data.length} values, raw ${raw.data.length}`);
  } else {
    // JSON numbers are the float32 values in shortest form: rounding them to float32 must give the raw bits.
    let differing = 0;
    for (let i = 0; i < raw.data.length; i++) {
      if (!Object.is(Math.fround(json.data[i]), raw.data[i])) {
        if (differing++ < 5) problems.push(`value ${i}: json ${json.data[i]} != raw ${raw.data[i]}`);
      }
    }
    if (differing === 0) console.log(`raw and json agree on all ${raw.data.length} values`);
    else problems.push(`${differing} values differ between raw and json`);
  }
  for (const { index, text, value } of opts.expected) {
    if (index >= raw.data.length) {
      problems.push(`expect[${index}]: index out of range (${raw.data.length} values)`);
    } else if (Object.is(raw.data[index], value)) {
      console.log(`expect[${index}] = ${text}: ok`);
    } else {
      problems.push(`expect[${index}]: got ${raw.data[index]}, expected ${text} (float32 ${value})`);
    }
  }
  if (raw.data.length > 0) {
    let sum = 0;
    let min = Infinity;
    let max = -Infinity;
    for (const v of raw.data) {
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const mean = sum / raw.data.length;
    let squares = 0;
    for (const v of raw.data) squares += (v - mean) ** 2;
    const std = Math.sqrt(squares / raw.data.length);
    const g = (x) => x.toPrecision(4);
    console.log(`mean ${g(mean)}  std ${g(std)}  min ${g(min)}  max ${g(max)}  first ${Array.from(raw.data.slice(0, 3)).join(", ")}`);
  }
  if (problems.length) {
    for (const problem of problems) console.error(`MISMATCH ${problem}`);
    process.exit(1);
  }
  console.log("OK");
}

main().catch((error) => {
  const cause = error.cause ? ` (${error.cause.code ?? error.cause.message ?? error.cause})` : "";
  console.error(`fetch_tensor: ${error instanceof Mismatch ? "MISMATCH " : ""}${error.message}${cause}`);
  process.exit(1);
});
