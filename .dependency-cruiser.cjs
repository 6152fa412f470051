// Import rules for src/, checked by `npm test` (dependency-cruiser). README's "Architecture" lists
// the same floors. A folder may import from its own floor and the floors below, never above.
const floors = [
  ["errors.ts", "validation.ts", "logger.ts"],
  ["crypto/", "network/", "jobs/"],
  ["observability/"],
  ["oauth/"],
  ["providers/"],
  ["store/"],
  ["auth/"],
  ["console/"],
  ["events/"],
  ["connections/"],
  ["interceptors/"],
  ["services/"],
  ["http/"],
  ["maintenance/"],
  ["config.ts"],
  ["compose/"],
  ["server.ts", "main.ts"],
];

const escape = (path) => path.replace(/[.]/g, "\\.");
const pathOf = (entries) => `^src/(${entries.map(escape).join("|")})`;

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A cycle means a definition sits in the wrong room: move it down to the floor both sides can import.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    ...floors.slice(0, -1).map((floor, index) => ({
      name: `no-upward-import-from-${floor[0].replace(/[/.]/g, "")}`,
      severity: "error",
      comment: `${floor.join(", ")} may import only from its own floor and those below (README, Architecture).`,
      from: { path: pathOf(floor) },
      to: { path: pathOf(floors.slice(index + 1).flat()) },
    })),
    {
      name: "every-src-file-has-a-floor",
      severity: "error",
      comment: "A new folder under src/ gets a floor in .dependency-cruiser.cjs and a line in README's Architecture.",
      from: { path: "^src/", pathNot: pathOf(floors.flat()) },
      to: {},
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // Type-only imports count: a cycle through types still ties the floors together.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    exclude: { path: "^(gen|node_modules|dist)/" },
  },
};
