// The Khronos glTF validator (npm gltf-validator, installed by `make gltf-validator` into
// tests/.node) over each file named on the command line: one JSON object, file -> counts and
// the first messages.
const validator = require('gltf-validator');
const fs = require('fs');
(async () => {
  const out = {};
  for (const file of process.argv.slice(2)) {
    const report = await validator.validateBytes(new Uint8Array(fs.readFileSync(file)), {maxIssues: 100});
    out[file] = {errors: report.issues.numErrors, warnings: report.issues.numWarnings,
                 infos: report.issues.numInfos, version: report.validatorVersion,
                 messages: report.issues.messages.slice(0, 20).map(
                   m => `${m.severity} ${m.code} ${m.pointer || ''} ${m.message}`)};
  }
  console.log(JSON.stringify(out));
})();
