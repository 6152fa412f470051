import type { Db, Document, Filter } from "mongodb";

/** The collection holding a state's hash: the one of its creation window (`<window>.<random>`, see src/store/oauth-states.ts). */
export const stateCollection = (db: Db, state: string) => db.collection(`oauth_states_w${state.split(".")[0]}`);

/** Documents matching `filter` across every state collection (windows and legacy ones). */
export async function countStates(db: Db, filter: Filter<Document> = {}): Promise<number> {
  let count = 0;
  for (const { name } of await db.listCollections({ name: /^oauth_states/ }, { nameOnly: true }).toArray()) count += await db.collection(name).countDocuments(filter);
  return count;
}
