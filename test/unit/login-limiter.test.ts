import { expect } from "chai";
import { LoginLimiter } from "../../plugins/accounts/login-limiter.js";

describe("login limiter", () => {
  const start = 1_000_000;

  it("limits a username after maxFailuresPerUser failures", () => {
    const limiter = new LoginLimiter({ maxFailuresPerUser: 3, windowMs: 1000 });
    for (let index = 0; index < 2; index += 1) {
      limiter.recordFailure("alice", `10.0.0.${index}:5000`, start);
    }
    expect(limiter.isLimited("alice", "10.0.0.9:1", start)).to.equal(false);

    limiter.recordFailure("alice", "10.0.0.3:5000", start);
    expect(limiter.isLimited("alice", "10.0.0.9:1", start)).to.equal(true);
    expect(limiter.isLimited("bob", "10.0.0.9:1", start)).to.equal(false);
  });

  it("limits a host across usernames and ports", () => {
    const limiter = new LoginLimiter({ maxFailuresPerHost: 3, windowMs: 1000 });
    for (const [index, user] of ["a", "b", "c"].entries()) {
      limiter.recordFailure(user, `192.0.2.7:${4000 + index}`, start);
    }

    expect(limiter.isLimited("d", "192.0.2.7:6000", start)).to.equal(true);
    expect(limiter.isLimited("d", "192.0.2.8:6000", start)).to.equal(false);
  });

  it("limits a host across transports", () => {
    const limiter = new LoginLimiter({ maxFailuresPerHost: 2, windowMs: 1000 });
    // The TCP transport leaves out its name, and other transports put theirs first.
    limiter.recordFailure("a", "192.0.2.7:4000", start);
    limiter.recordFailure("b", "ws 192.0.2.7:4001", start);

    expect(limiter.isLimited("c", "ndjson 192.0.2.7:4002", start)).to.equal(true);
    expect(limiter.isLimited("c", "192.0.2.7:4003", start)).to.equal(true);
    expect(limiter.isLimited("c", "ws 192.0.2.8:4004", start)).to.equal(false);
  });

  it("counts an IPv4-mapped address as IPv4", () => {
    const limiter = new LoginLimiter({ maxFailuresPerHost: 2, windowMs: 1000 });
    limiter.recordFailure("a", "::ffff:192.0.2.7:4000", start);
    limiter.recordFailure("b", "ws 192.0.2.7:4001", start);

    expect(limiter.isLimited("c", "192.0.2.7:4002", start)).to.equal(true);
    expect(limiter.isLimited("c", "::ffff:192.0.2.8:4003", start)).to.equal(false);
  });

  it("groups IPv6 connections by host", () => {
    const limiter = new LoginLimiter({ maxFailuresPerHost: 2, windowMs: 1000 });
    limiter.recordFailure("a", "::1:5000", start);
    limiter.recordFailure("b", "::1:5001", start);

    expect(limiter.isLimited("c", "::1:5002", start)).to.equal(true);
  });

  it("forgets failures older than the window", () => {
    const limiter = new LoginLimiter({ maxFailuresPerUser: 2, windowMs: 1000 });
    limiter.recordFailure("alice", "10.0.0.1:1", start);
    limiter.recordFailure("alice", "10.0.0.1:1", start + 500);

    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 999)).to.equal(true);
    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 1000)).to.equal(false);
  });

  it("clears a username after a successful login", () => {
    const limiter = new LoginLimiter({ maxFailuresPerUser: 2, maxFailuresPerHost: 2, windowMs: 1000 });
    limiter.recordFailure("alice", "10.0.0.1:1", start);
    limiter.recordSuccess("alice");
    limiter.recordFailure("alice", "10.0.0.2:1", start);

    expect(limiter.isLimited("alice", "10.0.0.3:1", start)).to.equal(false);
  });

  it("forgets a username's failures before a time", () => {
    const limiter = new LoginLimiter({ maxFailuresPerUser: 2, maxFailuresPerHost: 10, windowMs: 1000 });
    limiter.recordFailure("alice", "10.0.0.1:1", start);
    limiter.recordFailure("alice", "10.0.0.1:1", start + 10);
    limiter.recordFailure("alice", "10.0.0.1:1", start + 20);

    limiter.forgetUserFailuresBefore("alice", start + 10);
    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 30), "one failure is left").to.equal(false);

    limiter.recordFailure("alice", "10.0.0.1:1", start + 30);
    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 30)).to.equal(true);

    limiter.forgetUserFailuresBefore("alice", start + 30);
    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 30)).to.equal(false);
  });

  it("keeps the host's count when forgetting a username", () => {
    const limiter = new LoginLimiter({ maxFailuresPerUser: 10, maxFailuresPerHost: 2, windowMs: 1000 });
    limiter.recordFailure("alice", "10.0.0.1:1", start);
    limiter.recordFailure("alice", "10.0.0.1:2", start);

    limiter.forgetUserFailuresBefore("alice", start + 5);

    expect(limiter.isLimited("alice", "10.0.0.1:3", start + 10)).to.equal(true);
    expect(limiter.isLimited("alice", "10.0.0.2:1", start + 10)).to.equal(false);
  });
});
