import { expect } from "chai";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { MemoryStoreProvider, type StoreProvider } from "../../core/store.js";
import { sweepExpired } from "../../plugins/federation/expiry-sweep.js";
import { createStoreProvider } from "../../plugins/store/index.js";

const stores: Array<{ name: string; open: (folder: string) => Promise<StoreProvider> }> = [
  { name: "memory", open: async () => new MemoryStoreProvider() },
  {
    name: "sqlite",
    open: async (folder) => {
      const provider = createStoreProvider(`sqlite://${path.join(folder, "sweep.sqlite")}`);
      await provider.open?.();
      return provider;
    },
  },
];

for (const { name, open } of stores) {
  describe(`expiry sweep on ${name} (unit)`, () => {
    let folder: string;
    let provider: StoreProvider;

    beforeEach(async () => {
      folder = await mkdtemp(path.join(os.tmpdir(), "bester-sweep-"));
      provider = await open(folder);
    });

    afterEach(async () => {
      await provider.close();
      await rm(folder, { recursive: true, force: true });
    });

    it("removes expired entries from the adapter", async () => {
      const namespace = provider.namespace("federation-received");
      await namespace.set("old-1", true, 1);
      await namespace.set("old-2", true, 1);
      await namespace.set("fresh", true, 60_000);
      await provider.namespace("other").set("old-elsewhere", true, 1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await namespace.store.get(`federation-received:old-1`), "expired row before the sweep").to.not.equal(undefined);

      const left = await sweepExpired(namespace);

      expect(left).to.equal(1);
      // The expired rows are gone from the adapter itself, so they no longer take space.
      expect(await namespace.store.get(`federation-received:old-1`)).to.equal(undefined);
      expect(await namespace.store.get(`federation-received:old-2`)).to.equal(undefined);
      expect(await namespace.get("fresh")).to.equal(true);
      // Other namespaces are left alone.
      expect(await provider.namespace("other").store.get(`other:old-elsewhere`)).to.not.equal(undefined);
    });
  });
}
