#!/usr/bin/env node
// A paxid webhook receiver in Node (standard library only: http, crypto):
// verifies each message per Standard Webhooks (signature and a 5-minute
// timestamp tolerance), answers 204 only to a valid one, deduplicates by
// slot, and appends one JSON line per request to OUT_FILE.
//
//   WEBHOOK_SECRET=whsec_... node verify.js 127.0.0.1:9000 received.jsonl
//
// The contract is in docs/webhooks.md; tests/tests/webhooks.rs runs this
// receiver against a real learner.
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const http = require('http');

const TOLERANCE_S = 5 * 60;

// Returns null when valid, else why not. `body` is the exact Buffer received:
// verify before parsing (re-serialized JSON would not match).
function verify(secret, headers, body, nowS) {
  const id = headers['webhook-id'];
  const timestamp = headers['webhook-timestamp'];
  const signatures = headers['webhook-signature'];
  if (!id || !timestamp || !signatures) return 'missing webhook-id, webhook-timestamp or webhook-signature';
  if (!/^[0-9]+$/.test(timestamp)) return 'bad webhook-timestamp';
  const age = nowS - Number(timestamp);
  if (Math.abs(age) > TOLERANCE_S) return `webhook-timestamp outside the tolerance (age ${age} s)`;
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const expected = crypto.createHmac('sha256', key)
    .update(`${id}.${timestamp}.`).update(body).digest();
  // Several space-separated `v1,<base64>` entries may come (key rotation).
  for (const entry of signatures.split(' ')) {
    if (!entry.startsWith('v1,')) continue;
    const given = Buffer.from(entry.slice(3), 'base64');
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) return null;
  }
  return 'no matching signature';
}

function main() {
  const [listen, outFile] = process.argv.slice(2);
  const secret = process.env.WEBHOOK_SECRET;
  if (!listen || !outFile || !secret) {
    console.error('usage: WEBHOOK_SECRET=whsec_... node verify.js HOST:PORT OUT_FILE');
    process.exit(2);
  }
  const out = fs.openSync(outFile, 'a');
  // Written before answering: what was acknowledged is kept.
  const record = (line) => fs.writeSync(out, JSON.stringify(line) + '\n');
  // First slot not yet processed. A real receiver keeps this mark in its own
  // database, in the same transaction as the IDs it records. Slots and IDs
  // are unsigned 64-bit: slot numbers stay far below 2^53, but parse IDs as
  // BigInt if yours may pass it (JSON.parse rounds them).
  let nextSlot = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const webhookId = req.headers['webhook-id'] || '';
      const refused = verify(secret, req.headers, body, Math.floor(Date.now() / 1000));
      if (refused !== null) {
        record({ accepted: false, webhook_id: webhookId, reason: refused });
        res.writeHead(401).end();
        return;
      }
      let message;
      try {
        message = JSON.parse(body.toString('utf8'));
      } catch (error) {
        record({ accepted: false, webhook_id: webhookId, reason: String(error) });
        res.writeHead(400).end();
        return;
      }
      const newSlots = [];
      if (message.type === 'ids.allocated') {
        for (const slot of message.data.slots) {
          // Slots come in order: one below the mark was processed already
          // (a retry or a replay).
          if (slot.slot >= nextSlot) {
            newSlots.push(slot.slot);
            nextSlot = slot.slot + 1;
          }
        }
      } else if (message.type === 'ids.gap') {
        // Slots from_slot..below_slot will never come.
        nextSlot = Math.max(nextSlot, message.data.below_slot);
      }
      // Unknown types: acknowledge and ignore (new ones may come).
      record({
        accepted: true, webhook_id: webhookId, type: message.type,
        new_slots: newSlots, body: body.toString('utf8'),
      });
      res.writeHead(204).end();
    });
  });
  const at = listen.lastIndexOf(':');
  server.listen(Number(listen.slice(at + 1)), listen.slice(0, at), () => {
    console.error(`verify.js listening on ${listen}`);
  });
}

main();
