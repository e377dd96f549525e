"""Samples on request (DE serves DS and DA): :mod:`include.samples.sampler` writes a
reproducible, pseudonymised sample folder with its data card; :mod:`~include.samples.pseudonym`
holds the salted keyed hashes (also used for the marketing list); :mod:`~include.samples.access`
decides who may keep raw ids. The GX suite ``sample`` lives in :mod:`expectations.suites`; the
task bodies in :mod:`include.tasks.samples`."""
