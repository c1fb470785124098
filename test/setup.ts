/** Loaded before every test file (bunfig.toml): integration tests start processes, so each test gets 60 s. */
import { setDefaultTimeout } from "bun:test";

setDefaultTimeout(60_000);
