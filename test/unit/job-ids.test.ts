import { expect } from "chai";
import { createJobId, formatAddress, jobIdTime, formatOutputId, isValidUsername, parseOutputId, parseRecipient } from "../../core/jobs/job.js";

describe("job ids and addresses", () => {
  it("job id has no ':' or '@'", () => {
    for (let index = 0; index < 1000; index += 1) {
      expect(createJobId()).to.match(/^[0-9a-z-]+$/);
    }
  });

  it("job ids are unique within one millisecond", () => {
    const now = Date.now();
    const ids = Array.from({ length: 5000 }, () => createJobId(now));

    expect(new Set(ids).size).to.equal(5000);
  });

  it("job ids sort by creation order", () => {
    const ids = Array.from({ length: 50 }, () => createJobId());

    expect([...ids].sort()).to.deep.equal(ids);
  });

  it("job ids stay unique and sorted when the clock steps back", () => {
    const now = Date.now();
    const ids = [createJobId(now), createJobId(now - 5), createJobId(now - 5), createJobId(now), createJobId(now + 1)];

    expect(new Set(ids).size).to.equal(ids.length);
    expect([...ids].sort()).to.deep.equal(ids);
  });

  it("jobIdTime returns the id's creation time", () => {
    const before = Date.now();
    const created = jobIdTime(createJobId());

    expect(jobIdTime(`${(1712345678901).toString(36).padStart(9, "0")}-0000-a1b2c3`)).to.equal(1712345678901);
    expect(created).to.be.at.least(before);
    expect(jobIdTime("not-a-job-id")).to.equal(undefined);
  });

  it("output id splits at its first ':' back into its parts", () => {
    const outputId = formatOutputId({ id: createJobId(), user: "alice", origin: "[::1]:2222" });
    const parsed = parseOutputId(outputId);

    expect(outputId.split(":")[0]).to.equal(parsed?.jobId);
    expect(parsed?.user).to.equal("alice");
    expect(parsed?.server).to.equal("[::1]:2222");
  });

  for (const bad of ["", "noseparator", ":alice@s:1", "id:alice", "id:@s:1", "id:alice@"]) {
    it(`parseOutputId rejects "${bad}"`, () => {
      expect(parseOutputId(bad)).to.equal(undefined);
    });
  }

  it("formats an address as user@server", () => {
    expect(formatAddress("bob", "10.0.0.2:2222")).to.equal("bob@10.0.0.2:2222");
  });

  it("bare recipient is local", () => {
    expect(parseRecipient("carol", "127.0.0.1:2222")).to.deep.equal({ user: "carol", server: "127.0.0.1:2222", local: true });
  });

  it("recipient at this server is local", () => {
    expect(parseRecipient("carol@127.0.0.1:2222", "127.0.0.1:2222")).to.deep.equal({ user: "carol", server: "127.0.0.1:2222", local: true });
  });

  it("recipient at another server is remote", () => {
    expect(parseRecipient("carol@10.0.0.2:2222", "127.0.0.1:2222")).to.deep.equal({ user: "carol", server: "10.0.0.2:2222", local: false });
  });

  for (const bad of ["", "@10.0.0.2:2222", "carol@", "bad name", "a:b"]) {
    it(`recipient "${bad}" is rejected`, () => {
      expect(parseRecipient(bad, "127.0.0.1:2222")).to.equal(undefined);
    });
  }

  it("usernames are 1-64 characters of [A-Za-z0-9._-]", () => {
    expect(isValidUsername("a")).to.equal(true);
    expect(isValidUsername("Alice_Smith-2.0")).to.equal(true);
    expect(isValidUsername("x".repeat(64))).to.equal(true);
    expect(isValidUsername("x".repeat(65))).to.equal(false);
    expect(isValidUsername("")).to.equal(false);
    expect(isValidUsername("al ice")).to.equal(false);
    expect(isValidUsername("alice@host")).to.equal(false);
    expect(isValidUsername("alice\n")).to.equal(false);
  });
});
