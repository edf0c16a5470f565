'use strict';
// Nothing to import at run time: this package only stages the native runtime at install time.
module.exports = { staged: true };
