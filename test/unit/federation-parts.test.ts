import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { resolveConfig } from "../../core/config/schema.js";
import { BesterError } from "../../core/errors.js";
import { issueGrant, MAX_CHAIN_HOPS, verifyChain, verifyGrant } from "../../plugins/federation/grants.js";
import { createNonce, transcriptText } from "../../plugins/federation/handshake.js";
import { loadOrCreateServerKey, parsePublicKey, signText, verifyText, type ServerKey } from "../../plugins/federation/keys.js";
import { Outbox, parseOutboxKey } from "../../plugins/federation/outbox.js";
import { LINKED_PEERS_KEY } from "../../plugins/federation/stored-outboxes.js";
import { parseServerAddress } from "../../plugins/federation/peers.js";
import { createStoreProvider } from "../../plugins/store/index.js";

describe("federation parts", () => {
  let folder: string;
  let keyA: ServerKey;
  let keyB: ServerKey;

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), "bester-federation-unit-"));
    keyA = await loadOrCreateServerKey(path.join(folder, "a.key"));
    keyB = await loadOrCreateServerKey(path.join(folder, "b.key"));
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("public key text round-trips", () => {
    const parsed = parsePublicKey(keyA.publicKeyText, "test");

    expect(parsed.equals(keyA.publicKey)).to.equal(true);
    expect(() => parsePublicKey("ed25519:AAAA", "peers[0].publicKey")).to.throw(BesterError, /peers\[0\]\.publicKey/);
  });

  it("handshake signature binds role and nonces", () => {
    const transcript = { initiator: "127.0.0.1:1", responder: "127.0.0.1:2", initiatorNonce: createNonce(), responderNonce: createNonce(), channel: "none" };
    const signature = signText(keyB.privateKey, transcriptText(transcript, "responder"));

    expect(verifyText(keyB.publicKey, transcriptText(transcript, "responder"), signature)).to.equal(true);
    expect(verifyText(keyB.publicKey, transcriptText(transcript, "initiator"), signature)).to.equal(false);
    expect(verifyText(keyB.publicKey, transcriptText({ ...transcript, responderNonce: createNonce() }, "responder"), signature)).to.equal(false);
    expect(verifyText(keyA.publicKey, transcriptText(transcript, "responder"), signature)).to.equal(false);
    expect(verifyText(keyB.publicKey, transcriptText(transcript, "responder"), "not base64 at all")).to.equal(false);
  });

  it("grant verifies only unchanged", () => {
    const grant = issueGrant(keyA.privateKey, { from: "alice@127.0.0.1:1", to: "127.0.0.1:2", type: "echo", id: "m1" });

    expect(verifyGrant(keyA.publicKey, grant)).to.equal(true);
    expect(verifyGrant(keyA.publicKey, { ...grant, to: "127.0.0.1:3" })).to.equal(false);
    expect(verifyGrant(keyA.publicKey, { ...grant, from: "mallory@127.0.0.1:1" })).to.equal(false);
    expect(verifyGrant(keyB.publicKey, grant)).to.equal(false);
    expect(verifyGrant(keyA.publicKey, { ...grant, extra: 1 })).to.equal(false);
  });

  it("grant chain verifies hop by hop", async () => {
    const keyC = await loadOrCreateServerKey(path.join(folder, "c.key"));
    const [A, B, C, D] = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"];
    const keys = new Map([[A, keyA], [B, keyB], [C, keyC]]);
    const keyOf = (server: string) => keys.get(server)?.publicKey;
    const subject = `alice@${A}`;
    const first = issueGrant(keyA.privateKey, { from: subject, to: B, type: "forward", id: "m1" });
    const second = issueGrant(keyB.privateKey, { from: subject, to: C, type: "echo", id: "m2" });

    // The result is the server that signed the last grant.
    expect(verifyChain([first], subject, keyOf)).to.equal(A);
    expect(verifyChain([first, second], subject, keyOf)).to.equal(B);
    // A hop signed by another server than the one the previous grant named.
    const forged = issueGrant(keyC.privateKey, { from: subject, to: D, type: "echo", id: "m3" });
    expect(verifyChain([first, forged], subject, keyOf)).to.equal(undefined);
    // Hops out of order, another user, an empty chain, and a signer this server does not know.
    expect(verifyChain([second, first], subject, keyOf)).to.equal(undefined);
    expect(verifyChain([first, second], `mallory@${A}`, keyOf)).to.equal(undefined);
    expect(verifyChain([], subject, keyOf)).to.equal(undefined);
    expect(verifyChain([first, second], subject, (server) => (server === B ? undefined : keyOf(server)))).to.equal(undefined);
    // A valid chain bouncing between A and B, one hop longer than allowed.
    const bounce = (length: number) =>
      Array.from({ length }, (_, hop) => issueGrant((hop % 2 === 0 ? keyA : keyB).privateKey, { from: subject, to: hop % 2 === 0 ? B : A, type: "echo", id: `h${hop}` }));
    expect(verifyChain(bounce(MAX_CHAIN_HOPS), subject, keyOf)).to.equal(B);
    expect(verifyChain(bounce(MAX_CHAIN_HOPS + 1), subject, keyOf)).to.equal(undefined);
  });

  it("server address parsing", () => {
    expect(parseServerAddress("127.0.0.1:2222")).to.deep.equal({ host: "127.0.0.1", port: 2222 });
    expect(parseServerAddress("[::1]:2222")).to.deep.equal({ host: "::1", port: 2222 });
    expect(parseServerAddress("example.org:80")).to.deep.equal({ host: "example.org", port: 80 });
    expect(parseServerAddress("example.org")).to.equal(undefined);
    expect(parseServerAddress("a@b:1")).to.equal(undefined);
    expect(parseServerAddress("host:0")).to.equal(undefined);
    expect(parseServerAddress("host:70000")).to.equal(undefined);
  });

  it("outbox keeps order across reopen", async () => {
    const url = `sqlite://${path.join(folder, "outbox.sqlite")}`;
    const first = createStoreProvider(url);
    await first.open?.();
    const outbox = new Outbox(first.namespace("federation-outbox"), "127.0.0.1:2");
    await outbox.load();
    const entries = await Promise.all([1, 2, 3, 4].map((n) => outbox.append({ request: "test", n })));
    await outbox.remove(entries[0]!.id);
    await outbox.remove(entries[2]!.id);
    await first.close();

    const second = createStoreProvider(url);
    await second.open?.();
    const reopened = new Outbox(second.namespace("federation-outbox"), "127.0.0.1:2");
    const loaded = await reopened.load();
    const next = await reopened.append({ request: "test", n: 5 });
    await second.close();

    expect(entries.map((entry) => entry.seq)).to.deep.equal([0, 1, 2, 3]);
    expect(loaded).to.equal(2);
    expect(reopened.pending().slice(0, 2).map((entry) => entry.message)).to.deep.equal([
      { request: "test", n: 2, id: entries[1]!.id },
      { request: "test", n: 4, id: entries[3]!.id },
    ]);
    expect(next.seq).to.equal(4);
  });

  it("outbox key parsing", () => {
    expect(parseOutboxKey("10.0.0.2:2222#000000000007")).to.deep.equal({ peer: "10.0.0.2:2222", kind: "entry", seq: 7 });
    expect(parseOutboxKey("[::1]:2222#000000000000")).to.deep.equal({ peer: "[::1]:2222", kind: "entry", seq: 0 });
    expect(parseOutboxKey("10.0.0.2:2222#meta")).to.deep.equal({ peer: "10.0.0.2:2222", kind: "meta" });
    expect(parseOutboxKey("10.0.0.2:2222#7")).to.equal(undefined);
    expect(parseOutboxKey(LINKED_PEERS_KEY)).to.equal(undefined);
  });

  it("outbox entries carry their store time", async () => {
    const provider = createStoreProvider(`sqlite://${path.join(folder, "stored-at.sqlite")}`);
    await provider.open?.();
    const before = Date.now();
    const outbox = new Outbox(provider.namespace("federation-outbox"), "127.0.0.1:2");
    await outbox.load();
    const entry = await outbox.append({ request: "test" });
    const stored = (await provider.namespace("federation-outbox").get("127.0.0.1:2#000000000000")) as { storedAt?: number };
    await provider.close();

    expect(entry.storedAt).to.be.within(before, Date.now());
    expect(stored.storedAt).to.equal(entry.storedAt);
  });

  it("federation config defaults and paths", () => {
    const config = resolveConfig({ federation: { peers: [{ name: "10.0.0.2:2222", publicKey: keyB.publicKeyText }], tls: { key: "tls/k.pem", cert: "tls/c.pem" } } }, "/srv/bester");

    expect(config.federation).to.deep.equal({
      keyFile: "/srv/bester/data/server.key",
      peers: [{ name: "10.0.0.2:2222", publicKey: keyB.publicKeyText }],
      tls: { key: "/srv/bester/tls/k.pem", cert: "/srv/bester/tls/c.pem", ca: undefined },
      listen: undefined,
      reconnect: { minDelayMs: 250, maxDelayMs: 30_000 },
      ackTimeoutMs: 30_000,
      outboxRetryMs: 60_000,
    });
    expect(resolveConfig({ federation: { ackTimeoutMs: 0 } }, "/srv/bester").federation?.ackTimeoutMs).to.equal(0);
    expect(resolveConfig({ federation: { outboxRetryMs: 0 } }, "/srv/bester").federation?.outboxRetryMs).to.equal(0);
    expect(() => resolveConfig({ federation: { outboxRetryMs: -1 } }, "/srv/bester")).to.throw(BesterError, /federation\.outboxRetryMs/);
    expect(() => resolveConfig({ federation: { ackTimeoutMs: -1 } }, "/srv/bester")).to.throw(BesterError, /federation\.ackTimeoutMs/);
    expect(() => resolveConfig({ federation: { peers: [{ name: "10.0.0.2", publicKey: keyB.publicKeyText }] } }, "/srv/bester")).to.throw(BesterError, /federation\.peers\.0\.name/);
    expect(() => resolveConfig({ federation: { peers: [{ name: "10.0.0.2:1", publicKey: "abc" }] } }, "/srv/bester")).to.throw(BesterError, /publicKey/);
  });
});
