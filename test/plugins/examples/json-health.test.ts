// The example keeps its test in its own folder, as a third-party package would; `npm test` runs it from here.
import '../../../plugins/examples/json-health/json-health.test.js';
