import { test } from "uvu";
import * as assert from "uvu/assert";
import { randomUUID } from "node:crypto";
import { MemoryTileQueue } from "../../common/src/bus/memory-bus.js";
import type { TileDelivery } from "../../common/src/bus/types.js";

const bytes = (s: string) => new TextEncoder().encode(s);
const MAC = "0".repeat(64);
const text = (d: TileDelivery | null) => (d ? new TextDecoder().decode(d.data) : null);

async function queue(settings = { ackWaitMs: 10_000, maxDeliver: 5 }): Promise<{ q: MemoryTileQueue; job: string }> {
  const q = new MemoryTileQueue();
  const job = `test-${randomUUID()}`;
  await q.open(job, settings);
  return { q, job };
}

test("publish, next, ack: tiles come in order and an acked tile is gone", async () => {
  const { q, job } = await queue();
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    await q.publish(job, "t2", bytes("two"), MAC);
    const a = await q.next(job, 50);
    const b = await q.next(job, 50);
    assert.is(text(a), "one");
    assert.is(text(b), "two");
    assert.is(a!.deliveryCount, 1);
    await a!.ack();
    await b!.ack();
    assert.is(await q.next(job, 30), null, "nothing left after both acks");
  } finally {
    await q.close();
  }
});

test("next() waits for a publish that arrives during the wait", async () => {
  const { q, job } = await queue();
  try {
    const started = Date.now();
    setTimeout(() => void q.publish(job, "t1", bytes("late"), MAC), 30);
    // A wake-up by the timeout would take 60 s; by the publish, milliseconds (30 s: room for a loaded machine).
    const d = await q.next(job, 60_000);
    assert.is(text(d), "late");
    assert.ok(Date.now() - started < 30_000, "woken by the publish, not by the timeout");
  } finally {
    await q.close();
  }
});

test("next() with a timeout returns null when nothing comes; unknown jobs give null", async () => {
  const { q, job } = await queue();
  try {
    const started = Date.now();
    assert.is(await q.next(job, 80), null);
    const waited = Date.now() - started;
    assert.ok(waited >= 70, `waited ${waited} ms`);
    assert.is(await q.next("no-such-job", 10), null);
  } finally {
    await q.close();
  }
});

test("a leased tile is not handed to a second consumer", async () => {
  const { q, job } = await queue();
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const a = await q.next(job, 50);
    assert.ok(a);
    assert.is(await q.next(job, 30), null);
  } finally {
    await q.close();
  }
});

test("nak gives the tile back at once; nak(delay) only after the delay", async () => {
  const { q, job } = await queue();
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const a = await q.next(job, 50);
    a!.nak();
    const b = await q.next(job, 50);
    assert.is(text(b), "one");
    assert.is(b!.deliveryCount, 2);

    const t0 = Date.now();
    // The delay is long against the 100 ms look, so a stalled event loop cannot make it pass unnoticed.
    b!.nak(1000);
    assert.is(await q.next(job, 100), null, "not before the delay");
    const c = await q.next(job, 30_000);
    const after = Date.now() - t0;
    assert.is(text(c), "one");
    assert.is(c!.deliveryCount, 3);
    assert.ok(after >= 990, `redelivered after ${after} ms`);
  } finally {
    await q.close();
  }
});

test("an expired lease redelivers with deliveryCount 2", async () => {
  const { q, job } = await queue({ ackWaitMs: 1000, maxDeliver: 5 });
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const a = await q.next(job, 50);
    assert.is(a!.deliveryCount, 1);
    assert.is(await q.next(job, 20), null, "still leased");
    const b = await q.next(job, 30_000);
    assert.is(text(b), "one");
    assert.is(b!.deliveryCount, 2);
  } finally {
    await q.close();
  }
});

test("working() extends the lease", async () => {
  const { q, job } = await queue({ ackWaitMs: 1000, maxDeliver: 5 });
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const a = await q.next(job, 50);
    const t0 = Date.now();
    // Progress every 50 ms against an ack wait of 1 s: only a stall of almost a second could lose the lease.
    const keep = setInterval(() => a!.working(), 50);
    try {
      // Two ack waits pass while the holder reports progress: no redelivery.
      assert.is(await q.next(job, 2100), null);
      assert.ok(Date.now() - t0 >= 2050);
    } finally {
      clearInterval(keep);
    }
    await a!.ack();
    assert.is(await q.next(job, 300), null, "acked after the long run: gone");
  } finally {
    await q.close();
  }
});

test("maxDeliver reached calls onMaxDeliveries with the message once; it stays in the queue undeliverable, as in JetStream", async () => {
  const { q, job } = await queue({ ackWaitMs: 10_000, maxDeliver: 2 });
  const calls: [string, string][] = [];
  q.onMaxDeliveries((m) => calls.push([m.jobId, m.tileId]));
  try {
    await q.publish(job, "tile-a", bytes("a"), MAC);
    const d1 = await q.next(job, 50);
    d1!.nak();
    const d2 = await q.next(job, 50);
    assert.is(d2!.deliveryCount, 2);
    assert.equal(calls, []);
    d2!.nak();
    assert.is(await q.next(job, 50), null, "no third delivery");
    assert.equal(calls, [[job, "tile-a"]]);
    assert.is(await q.next(job, 30), null);
    assert.equal(calls.length, 1, "reported once");
    const seen = await q.inspect(job);
    assert.equal([seen.messages, seen.tileIds], [1, ["tile-a"]], "still listed (reconcile sees it)");
  } finally {
    await q.close();
  }
});

test("term drops the tile for good, without a max-deliveries report", async () => {
  const { q, job } = await queue({ ackWaitMs: 60, maxDeliver: 2 });
  const calls: string[] = [];
  q.onMaxDeliveries((m) => calls.push(m.tileId));
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const d = await q.next(job, 50);
    d!.term();
    assert.is(await q.next(job, 200), null, "not redelivered, even after the ack wait");
    assert.equal(calls, []);
  } finally {
    await q.close();
  }
});

test("an ack from a stale delivery does not ack the redelivered tile", async () => {
  const { q, job } = await queue({ ackWaitMs: 150, maxDeliver: 5 });
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    const stale = await q.next(job, 50);
    const fresh = await q.next(job, 1000);
    assert.is(fresh!.deliveryCount, 2);
    await stale!.ack();
    stale!.working();
    stale!.nak();
    assert.is(await q.next(job, 20), null, "the stale nak does not release the fresh lease");
    // The fresh lease runs out: the tile comes back, so the stale ack did nothing.
    const again = await q.next(job, 1000);
    assert.is(text(again), "one");
    assert.is(again!.deliveryCount, 3);
    await again!.ack();
    assert.is(await q.next(job, 250), null);
  } finally {
    await q.close();
  }
});

test("purge drops queued tiles; release deletes the queue", async () => {
  const { q, job } = await queue();
  try {
    await q.publish(job, "t1", bytes("one"), MAC);
    await q.publish(job, "t2", bytes("two"), MAC);
    await q.purge(job);
    assert.is(await q.next(job, 30), null);
    await q.publish(job, "t3", bytes("three"), MAC);
    assert.is(text(await q.next(job, 30)), "three", "the queue still works after a purge");

    await q.release(job);
    assert.is(await q.next(job, 30), null);
    await q.publish(job, "t4", bytes("four"), MAC).then(
      () => assert.unreachable("publish to a released queue must fail"),
      (err: Error) => assert.match(err.message, "no queue"),
    );
  } finally {
    await q.close();
  }
});

test("jobs are separate queues; close() ends waiting consumers", async () => {
  const q = new MemoryTileQueue();
  await q.open("a", { ackWaitMs: 10_000, maxDeliver: 5 });
  await q.open("b", { ackWaitMs: 10_000, maxDeliver: 5 });
  await q.publish("a", "t1", bytes("for a"), MAC);
  assert.is(await q.next("b", 20), null);
  assert.is(text(await q.next("a", 20)), "for a");
  const waiting = q.next("b", 60_000);
  const t0 = Date.now();
  await q.close();
  assert.is(await waiting, null);
  assert.ok(Date.now() - t0 < 30_000, "ended by close(), not by its 60 s timeout");
});

test.run();
