import { expect } from "chai";
import { formatStatus } from "../../core/cli/status.js";
import { formatDuration, formatTable } from "../../core/cli/table.js";
import { RateMeter } from "../../plugins/admin-status/rate-meter.js";

describe("RateMeter jobs per second", () => {
  it("averages over the uptime when shorter than a minute", () => {
    let now = 1_000_000;
    const meter = new RateMeter(now, () => now);

    now += 10_000;
    for (let index = 0; index < 25; index += 1) {
      meter.record();
    }

    expect(meter.sinceStart()).to.equal(2.5);
    expect(meter.lastMinute()).to.equal(2.5);
  });

  it("forgets jobs older than a minute", () => {
    let now = 5_000_000;
    const meter = new RateMeter(now, () => now);
    for (let index = 0; index < 120; index += 1) {
      meter.record();
    }

    now += 90_000;
    for (let index = 0; index < 30; index += 1) {
      meter.record();
    }

    expect(meter.lastMinute()).to.equal(0.5);
    expect(meter.sinceStart()).to.equal(1.67);
  });

  it("reports zero before any job", () => {
    const meter = new RateMeter(0, () => 30_000);

    expect(meter.sinceStart()).to.equal(0);
    expect(meter.lastMinute()).to.equal(0);
  });
});

describe("CLI table formatting", () => {
  it("pads text left and numbers right", () => {
    const table = formatTable(["name", "count"], [["a", 5], ["longer", 12345]]);

    expect(table).to.equal("name    count\na           5\nlonger  12345\n");
  });

  it("prints (none) for no rows and - for missing cells", () => {
    expect(formatTable(["a"], [])).to.equal("(none)\n");
    expect(formatTable(["a", "b"], [["x", null]])).to.equal("a  b\nx  -\n");
  });

  it("formats durations with their largest unit first", () => {
    expect(formatDuration(5)).to.equal("5s");
    expect(formatDuration(65)).to.equal("1m 05s");
    expect(formatDuration(7385)).to.equal("2h 03m 05s");
    expect(formatDuration(2 * 86_400 + 3600 + 4)).to.equal("2d 1h 00m 04s");
  });

  it("renders plugin sections as tables", () => {
    const text = formatStatus({
      serverName: "127.0.0.1:2222",
      startedAt: "2026-12-04T18:02:11.512Z",
      uptimeSeconds: 65,
      jobsPerSecond: { sinceStart: 1, lastMinute: 2 },
      jobTypes: [],
      users: [],
      sections: { peers: { title: "Peer links", rows: [{ peer: "10.0.0.2:2222", backlog: 3 }] } },
    });

    expect(text).to.include("Server 127.0.0.1:2222, up 1m 05s (since 2026-12-04T18:02:11.512Z)\n");
    expect(text).to.include("Job types\n(none)\n");
    expect(text).to.include("Peer links\npeer           backlog\n10.0.0.2:2222        3\n");
  });
});
