// A producer of llmtap events in JavaScript, written from docs/wire-format.md alone: it XADDs
// call events (no `latency`: the workers derive it) and exact rollups to llmtap:{s0}:events, in
// single (`e`) and batched (`b`) entries, then prints one JSON line with what it sent.
//
//   node produce.mjs REDIS_URL [CALLS]
//
// @msgpack/msgpack writes whole numbers (start_time, sample_rate 1.0) as msgpack integers,
// which the schema allows wherever a number is expected.
import { encode } from "@msgpack/msgpack";
import { createClient } from "redis";

const STREAM = "llmtap:{s0}:events"; // one shard (LLMTAP_SHARDS=1); see docs/wire-format.md
const T0 = 1767225600; // 2026-01-01T00:00:00Z
const PRODUCER = "node-producer";
const MODELS = [
  ["openai", "gpt-4o-mini"],
  ["anthropic", "claude-3-5-haiku"],
];

function call(i) {
  const [backend, model_name] = MODELS[i % MODELS.length];
  const success = i % 5 !== 4;
  const start_time = T0 + 10 * i;
  const event = {
    v: 1,
    t: "call",
    call_id: `node-${i}`,
    producer_id: PRODUCER,
    backend,
    model_name,
    start_time,
    end_time: start_time + (i % 2 === 0 ? 2 : 1.5),
    success,
    sample_rate: 1.0,
    reason: success ? "sampled" : "error",
    input_tokens: 100 + i,
    output_tokens: 10 + 2 * i,
    cost_nanousd: 1000 * (3 * i + 7), // not a wire field: kept for the rollup rows below
    tags: { lang: "js" },
  };
  if (!success) event.error_type = "RateLimitError";
  return event;
}

function rollup(seq, calls, totalCalls) {
  const rows = new Map();
  for (const c of calls) {
    const key = `${c.backend}\u0000${c.model_name}`;
    const row = rows.get(key) ?? {
      backend: c.backend, model: c.model_name, calls: 0, errors: 0,
      input_tokens: 0, output_tokens: 0, cost_nanousd: 0,
    };
    row.calls += 1;
    row.errors += c.success ? 0 : 1;
    row.input_tokens += c.input_tokens;
    row.output_tokens += c.output_tokens;
    row.cost_nanousd += c.cost_nanousd;
    rows.set(key, row);
  }
  const starts = calls.map((c) => c.start_time);
  return {
    v: 1,
    t: "rollup",
    producer_id: PRODUCER,
    seq,
    window_start: Math.min(...starts),
    window_end: Math.max(...calls.map((c) => c.end_time)),
    rows: [...rows.values()],
    stats: { total_calls: totalCalls, profiled_calls: totalCalls, dropped_events: 0 },
  };
}

function onWire(c) {
  const { cost_nanousd, ...event } = c;
  return { ...event, estimated_cost_usd: cost_nanousd / 1e9 };
}

async function main() {
  const [url, count = "24"] = process.argv.slice(2);
  const n = Number.parseInt(count, 10);
  const calls = Array.from({ length: n }, (_, i) => call(i));
  const half = Math.floor(n / 2);
  const client = createClient({ url });
  client.on("error", (err) => {
    console.error(`produce.mjs: ${err.message}`);
    process.exit(1);
  });
  await client.connect();
  const entries = [
    // three calls, then the first half's rollup, each as its own `e` entry
    ...calls.slice(0, 3).map((c) => ({ e: encode(onWire(c)) })),
    { e: encode(rollup(1, calls.slice(0, half), half)) },
    // the rest of the first half in one `b` array
    { b: encode(calls.slice(3, half).map(onWire)) },
    // the second half with its rollup, in `b` arrays of five
  ];
  const tail = [...calls.slice(half).map(onWire), rollup(2, calls.slice(half), n)];
  for (let i = 0; i < tail.length; i += 5) entries.push({ b: encode(tail.slice(i, i + 5)) });
  for (const fields of entries) {
    const [[field, value]] = Object.entries(fields);
    await client.xAdd(STREAM, "*", { [field]: Buffer.from(value) });
  }
  await client.quit();
  const sum = (f) => calls.reduce((acc, c) => acc + f(c), 0);
  console.log(JSON.stringify({
    entries: entries.length,
    call_events: n,
    rollups: 2,
    latency_sum: sum((c) => c.end_time - c.start_time),
    totals: {
      calls: n,
      errors: sum((c) => (c.success ? 0 : 1)),
      input_tokens: sum((c) => c.input_tokens),
      output_tokens: sum((c) => c.output_tokens),
      cost_nanousd: sum((c) => c.cost_nanousd),
    },
  }));
}

await main();
