import { expect } from "chai";
import { setTimeout as sleep } from "node:timers/promises";
import { BesterClient, BesterClientError } from "../../plugins/transport-tcp/client.js";
import { freePort, startServer, type TestServer } from "../helper.js";

/** Resolves with what `promise` rejected with, or fails the test when it resolves. */
async function rejectionOf(promise: Promise<unknown>): Promise<BesterClientError> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  expect(outcome, "the promise resolved, but a rejection was expected").to.be.instanceOf(BesterClientError);
  return outcome as BesterClientError;
}

describe("client SDK waitForServerMs", () => {
  let server: TestServer | undefined;
  let client: BesterClient | undefined;

  afterEach(async () => {
    await client?.close();
    await server?.stop();
    client = undefined;
    server = undefined;
  });

  it("waits for a server that starts late", async () => {
    const port = await freePort();
    const started = performance.now();

    const connecting = BesterClient.connect({ port, waitForServerMs: 10_000 });
    // Marks an early rejection as handled while the server starts; the await below still reports it.
    connecting.catch(() => undefined);
    await sleep(500);
    server = await startServer({ registration: true, listen: { host: "127.0.0.1", port } });
    client = await connecting;
    const elapsed = performance.now() - started;
    await client.register("late", "pw");
    const address = await client.auth("late", "pw");

    expect(elapsed).to.be.at.least(500);
    expect(address).to.equal(`late@${server.bester.serverName}`);
  });

  it("fails with connectFailed after the wait", async () => {
    const port = await freePort();
    const started = performance.now();

    const error = await rejectionOf(BesterClient.connect({ port, waitForServerMs: 700 }));
    const elapsed = performance.now() - started;

    expect(error.code).to.equal("connectFailed");
    expect(error.message).to.include(`Connecting to 127.0.0.1:${port} failed (ECONNREFUSED).`);
    expect(error.message).to.include("The client waited 700 ms for the server (waitForServerMs)");
    expect((error.cause as NodeJS.ErrnoException).code).to.equal("ECONNREFUSED");
    expect(elapsed).to.be.at.least(690);
    expect(elapsed).to.be.below(3_000);
  });

  it("uses the reconnect delays between attempts", async () => {
    const port = await freePort();

    // Attempts at 0, 100, 300, 500 and 700 ms: delays of 100 ms doubling, capped at 200 ms.
    const error = await rejectionOf(BesterClient.connect({ port, waitForServerMs: 700, reconnect: { delayMs: 100, maxDelayMs: 200 } }));

    expect(error.code).to.equal("connectFailed");
    // 5 on time; a busy machine that delays a timer by 200 ms leaves room for fewer. Without the
    // delays there would be hundreds, and without retries one.
    const attempts = Number(/made (\d+) attempts\.$/.exec(error.message)?.[1]);
    expect(attempts, error.message).to.be.within(3, 5);
  });

  it("fails at once without the option", async () => {
    const port = await freePort();
    const started = performance.now();

    const error = await rejectionOf(BesterClient.connect({ port }));
    const elapsed = performance.now() - started;

    expect(error.code).to.equal("connectFailed");
    expect(error.message).to.not.include("waitForServerMs");
    expect(elapsed).to.be.below(1_000);
  });

  it("fails at once on a TLS error", async () => {
    // A plain TCP listener sends bytes that are not a TLS record, and waiting does not change that.
    server = await startServer();
    const started = performance.now();

    const error = await rejectionOf(BesterClient.connect({ port: server.port, tls: {}, waitForServerMs: 5_000 }));
    const elapsed = performance.now() - started;

    expect(error.code).to.equal("connectFailed");
    expect(error.message).to.not.include("waitForServerMs");
    expect(elapsed).to.be.below(1_000);
  });
});
