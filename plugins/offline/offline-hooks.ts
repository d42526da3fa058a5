// The offline plugin's own hooks, one frozen object per Bester instance. A login plugin taps them
// so that the messages stored for a user go only to the account they were stored for, and never
// to a later account that was created under the same name after a removal.

import { AsyncSeriesBailHook, SyncBailHook } from "tapable";
import type { Bester } from "../../core/bester.js";
import { perInstance } from "../../core/plugin.js";
import type { Connection } from "../../core/sessions.js";

export function createOfflineHooks() {
  return Object.freeze({
    /**
     * Returns the creation time (milliseconds since the epoch) of the account that `user` names
     * now, or null when the tap manages logins for that name and no account has it. Undefined
     * leaves the call to the next tap. Each stored message keeps the value read after it was stored.
     */
    accountCreatedAt: new AsyncSeriesBailHook<[string], number | null | undefined>(["user"]),
    /**
     * Returns the creation time of the account that `connection` logged in to, or undefined when
     * the tap did not log it in. A connection that no tap claims receives every message stored
     * for its user name.
     */
    connectionAccountCreatedAt: new SyncBailHook<[Connection], number | undefined>(["connection"]),
  });
}

export type OfflineHooks = ReturnType<typeof createOfflineHooks>;

/** Returns the offline hooks of one Bester instance, creating them on first use. */
export const offlineHooksOf: (bester: Bester) => OfflineHooks = perInstance(createOfflineHooks);
