"""Each user's own behavioural baseline, kept by the nightly job (tables ``user_baselines`` and
``user_baseline_reference``, one snapshot per date).

``habits``: a session against its user's expected habits (pure Spark columns: the score, its exact
per-cause breakdown as reasons); ``fold``: a day folded into the state (pure transforms);
``snapshots``: where the snapshots and references live; ``nightly``: the job's use of them (load,
score, update, rebuild) and ``raksha baseline build``.
"""
