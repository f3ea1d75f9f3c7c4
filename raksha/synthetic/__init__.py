"""Synthetic days of mobile-banking sessions that look like a bank's, with ground truth.

The package owns the sample data: the user population (``users``), the action sequences, their
times and amounts (``actions``), the ground truth of attacks and benign oddities (``labels``), one
day as pandas frames shaped as the contract's sessions, actions and labels (``day``), all pure
numpy/pandas; and, apart from them, writing the days as Parquet folders (``write``, whose
``generate`` is ``raksha generate``). ``generate`` and ``generate_day`` are importable from here.

The model of the data:

- **Users** (fixed for a seed, the same on every day and whatever the day's volume): a primary
  device (a quarter have a second one), a home place (gps) and home wifi, usual hours of activity
  (a morning, a lunchtime and an evening crowd, a little later at weekends), a screen brightness
  habit, and personal touch and motion dynamics. User ``i``'s habits depend only on the seed and
  ``i`` (``users``), so a day of 20k sessions and a day of 1M sessions share their first users.
  Activity is skewed (log-normal): a few users have many sessions, most have few.
- **Touch and motion dynamics** are correlated, as in the autoencoder notebook's "correlated"
  training data: three latent traits of a hand (firmness, speed, steadiness) drive touch pressure
  and area, tap duration and interval, swipe velocity, orientation and accelerometer/gyroscope
  variance; every session varies a little around its user's traits.
- **Normal sessions** vary around their user's habits: mostly at home on the home wifi, sometimes
  near home or on mobile data (wifi missing); gps sometimes denied (missing). Actions like the LSTM
  notebook's normal traffic: LOGIN, then mostly VIEW_BALANCE / VIEW_TRANSACTIONS, sometimes a
  TRANSFER_SMALL, usually LOGOUT at the end; about 5-6 actions on average, 2% long sessions (up
  to 25 actions), rarely a legitimate ADD_RECIPIENT, CHANGE_PASSWORD or TRANSFER_LARGE, a few
  actions outside the vocabulary (``UNKNOWN_ACTION_NAMES``), and 1% resumed sessions that start
  without a LOGIN. ``app_usage_time`` follows the session's length in time, ``touch_event_count``
  its number of actions.
- **Benign oddities** among normal sessions (``ODDITY_RATE`` each), labelled in ``benign_oddity``
  with ``is_attack = 0``, so that nothing is trivially separable: ``new_device`` (a new phone,
  whose screen also registers touch a little differently), ``travel`` (far from home, foreign
  networks), ``low_battery_night`` (late, low battery, not charging, dark screen),
  ``missing_sensors`` (no accelerometer or gyroscope readings).
- **Attacks** at ``attack_rate`` (a fraction of the day's sessions), mixed as ``ATTACK_MIX``, each
  labelled with its kind:

  * ``account_takeover``: a new device, far from the user's home on an unknown network or mobile
    data, mostly at night, another person's hand, quick purposeful steps, and an aggressive
    sequence (``ATTACK_SEQUENCES``), among them the LSTM notebook's test sequences LOGIN,
    CHANGE_PASSWORD, TRANSFER_LARGE and LOGIN, ADD_RECIPIENT, TRANSFER_LARGE (with and without
    LOGOUT), in a third of them after some browsing and in a quarter followed by some;
  * ``bot``: too fast (tiny tap duration and interval), too regular (tiny motion variance, or no
    motion sensors at all), a tiny touch area, many touch events, actions a fraction of a second
    apart, mostly from a fresh device and at any hour; its action sequence looks ordinary;
  * ``social_engineering``: the user's own device, at home on the home wifi, the user's own hand,
    at the user's usual hour, but hesitant (long screen-on and app-usage times, long pauses while
    on the phone with the "bank") and an unusual sequence such as LOGIN, VIEW_BALANCE,
    ADD_RECIPIENT, TRANSFER_LARGE, TRANSFER_LARGE.

Time of day is encoded on the unit circle with midnight at (sin, cos) = (-1, 0), as the
autoencoder notebook's examples read ("time_of_day_sin: -1.0  # Edge of day (e.g., midnight)"):
the angle is ``2*pi*hour/24 + TIME_OF_DAY_PHASE`` with the phase ``-pi/2``
(``day.time_of_day_encoding``). Amounts: TRANSFER_SMALL below 500, TRANSFER_LARGE above 10,000,
null for every other action.

Everything is vectorized numpy (no Python loop per session or per action) and deterministic: the
users come from ``SeedSequence([seed, USER_STREAM, block])``, each day from
``SeedSequence([seed, day.toordinal()])``; the same arguments give the same frames and the same
Parquet bytes. One day of 1M sessions (about 5.5M actions) generates and writes in about 10 s on
two cores.
"""

from raksha.synthetic.day import generate_day
from raksha.synthetic.write import generate

__all__ = ["generate", "generate_day"]
