"""The two notebooks' pipelines, cell for cell, with Keras 2 (tf-keras) as the notebooks ran them.

Used to produce the five files a bank that ran the notebooks has (``autoencoder_model.h5``,
``scaler.pkl``, ``threshold.pkl``, ``feature_info.pkl``, ``model_lstm.h5``), and the notebooks'
own per-row functions (``score_session``, ``predict_session_risk``) to compare Raksha against.
Only training sizes, epochs and seeds are parameters, so tests stay quick. Names follow the
notebooks (``X_train``, ``seq1``...), hence the lint exceptions.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tf_keras as keras2  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from tf_keras.callbacks import EarlyStopping  # noqa: E402
from tf_keras.layers import LSTM, Dense, Dropout, Embedding, Input  # noqa: E402
from tf_keras.models import Model, Sequential  # noqa: E402
from tf_keras.preprocessing.sequence import pad_sequences  # noqa: E402

# ---------------------------------------------------------------- autoencoder notebook, section 3
continuous_features = [
    "tap_duration",
    "swipe_velocity",
    "touch_pressure",
    "tap_interval_avg",
    "accel_variance",
    "gyro_variance",
    "battery_level",
    "brightness_level",
    "screen_on_time",
    "time_of_day_sin",
    "time_of_day_cos",
    "wifi_id_hash",
    "gps_latitude",
    "gps_longitude",
    "device_orientation",
    "touch_area",
    "touch_event_count",
    "app_usage_time",
]
binary_features = [
    "accel_variance_missing",
    "gyro_variance_missing",
    "charging_state",
    "wifi_info_missing",
    "gps_location_missing",
    "day_of_week_mon",
    "day_of_week_tue",
    "day_of_week_wed",
    "day_of_week_thu",
    "day_of_week_fri",
    "day_of_week_sat",
    "day_of_week_sun",
]

# ---------------------------------------------------------------- LSTM notebook, part 1
ACTIONS = {
    "LOGIN": 1,
    "VIEW_BALANCE": 2,
    "VIEW_TRANSACTIONS": 3,
    "TRANSFER_SMALL": 4,  # < $500 (Normal behavior)
    "TRANSFER_LARGE": 5,  # > $10,000 (Risky)
    "CHANGE_PASSWORD": 6,
    "ADD_RECIPIENT": 7,
    "LOGOUT": 8,
}
MAX_SEQ_LENGTH = 10

# ---------------------------------------------------------------- LSTM notebook, part 5 test cases
seq1 = ["LOGIN", "VIEW_BALANCE", "VIEW_TRANSACTIONS", "LOGOUT"]
seq2 = ["LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE"]
seq3 = ["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE"]
SEQ1, SEQ2, SEQ3 = seq1, seq2, seq3  # the names other tests use

# ---------------------------------------------------------------- autoencoder notebook, section 8
anomalous_example = {
    "tap_duration": 0.09,  # Too fast – bot-like
    "swipe_velocity": 0.2,  # Unusually slow swipe
    "touch_pressure": 0.1,  # Very light touch
    "tap_interval_avg": 0.05,  # Tapping too fast
    "accel_variance": 0.95,  # Erratic movement
    "gyro_variance": 0.95,  # High rotation — suspicious
    "battery_level": 0.05,  # Very low battery
    "brightness_level": 0.1,  # Screen barely visible
    "screen_on_time": 0.95,  # Long screen on time – suspicious idle
    "time_of_day_sin": -1.0,  # Edge of day (e.g., midnight)
    "time_of_day_cos": 0.0,
    "wifi_id_hash": 0.0,  # Unrecognized network
    "gps_latitude": 0.0,
    "gps_longitude": 0.0,  # Unknown location
    "device_orientation": 0.95,  # Unusual device orientation
    "touch_area": 0.05,  # Very small touch area - suspicious
    "touch_event_count": 0.95,  # Too many touch events
    "app_usage_time": 0.95,  # Suspiciously long app usage
    "accel_variance_missing": 1,
    "gyro_variance_missing": 1,
    "charging_state": 0,  # Not charging on low battery
    "wifi_info_missing": 1,
    "gps_location_missing": 1,
    "day_of_week_mon": 0,
    "day_of_week_tue": 0,
    "day_of_week_wed": 0,
    "day_of_week_thu": 0,
    "day_of_week_fri": 0,
    "day_of_week_sat": 0,
    "day_of_week_sun": 1,  # Late night Sunday login (anomaly)
}
normal_example = {
    "tap_duration": 0.2,  # Normal tap duration
    "swipe_velocity": 0.75,  # Normal swipe speed
    "touch_pressure": 0.7,  # Normal touch pressure
    "tap_interval_avg": 0.3,  # Normal tap intervals
    "accel_variance": 0.3,  # Normal movement
    "gyro_variance": 0.25,  # Normal rotation
    "battery_level": 0.6,  # Normal battery level
    "brightness_level": 0.7,  # Normal brightness
    "screen_on_time": 0.4,  # Normal screen time
    "time_of_day_sin": 0.5,  # Normal time (afternoon)
    "time_of_day_cos": 0.87,
    "wifi_id_hash": 0.8,  # Familiar network
    "gps_latitude": 0.4,
    "gps_longitude": 0.6,  # Normal location
    "device_orientation": 0.5,  # Normal device orientation
    "touch_area": 0.6,  # Normal touch area
    "touch_event_count": 0.4,  # Normal touch events
    "app_usage_time": 0.3,  # Normal app usage time
    "accel_variance_missing": 0,
    "gyro_variance_missing": 0,
    "charging_state": 1,  # Device is charging
    "wifi_info_missing": 0,
    "gps_location_missing": 0,
    "day_of_week_mon": 0,
    "day_of_week_tue": 0,
    "day_of_week_wed": 1,  # Wednesday (normal business day)
    "day_of_week_thu": 0,
    "day_of_week_fri": 0,
    "day_of_week_sat": 0,
    "day_of_week_sun": 0,
}


def train_notebook_autoencoder(
    df: pd.DataFrame, epochs: int = 100, seed: int | None = None
) -> tuple[Any, StandardScaler, np.float64]:
    """Sections 3-6 of the autoencoder notebook: (autoencoder, scaler, threshold).

    ``df`` holds the 30 feature columns (the notebook's uploaded CSV). ``seed``, when given,
    seeds Keras 2 (the notebook did not); it changes nothing but the initial weights.
    """
    if seed is not None:
        keras2.utils.set_random_seed(seed)
    # Handle missing values
    df_processed = df.copy()
    df_processed[continuous_features] = df_processed[continuous_features].fillna(0)
    df_processed[binary_features] = df_processed[binary_features].fillna(0)

    # Standardize continuous features
    scaler = StandardScaler()
    scaled_continuous = scaler.fit_transform(df_processed[continuous_features])

    # Combine scaled continuous and binary features
    X = np.hstack([scaled_continuous, df_processed[binary_features].values])  # noqa: N806
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=42)  # noqa: N806

    # Build autoencoder architecture
    input_dim = X.shape[1]
    input_layer = Input(shape=(input_dim,), name="input")
    encoded = Dense(32, activation="relu", name="encoder_1")(input_layer)
    encoded = Dense(16, activation="relu", name="encoder_2")(encoded)
    decoded = Dense(32, activation="relu", name="decoder_1")(encoded)
    output_layer = Dense(input_dim, activation="linear", name="output")(decoded)
    autoencoder = Model(inputs=input_layer, outputs=output_layer, name="behavioral_autoencoder")
    autoencoder.compile(optimizer="adam", loss="mse", metrics=["mae"])

    # Train the model
    early_stopping = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True, verbose=0)
    autoencoder.fit(
        X_train,
        X_train,
        epochs=epochs,
        batch_size=64,
        validation_split=0.2,
        callbacks=[early_stopping],
        verbose=0,
    )

    # Evaluate model on test set
    X_test_pred = autoencoder.predict(X_test, verbose=0)  # noqa: N806
    reconstruction_errors = np.mean(np.square(X_test - X_test_pred), axis=1)
    thresholds = {}
    for p in [90, 95, 99]:
        thresholds[p] = np.percentile(reconstruction_errors, p)
    threshold = thresholds[95]
    return autoencoder, scaler, threshold


def save_notebook_autoencoder_files(
    folder: Path | str, autoencoder: Any, scaler: StandardScaler, threshold: Any
) -> None:
    """Section 7 of the autoencoder notebook, writing into ``folder``."""
    folder = Path(folder)
    model_filename = str(folder / "autoencoder_model.h5")
    with warnings.catch_warnings():  # the notebook ran under warnings.filterwarnings('ignore')
        warnings.simplefilter("ignore")
        autoencoder.save(model_filename)
    scaler_filename = folder / "scaler.pkl"
    joblib.dump(scaler, scaler_filename)
    threshold_filename = folder / "threshold.pkl"
    joblib.dump(threshold, threshold_filename)
    feature_info = {
        "continuous_features": continuous_features,
        "binary_features": binary_features,
        "total_features": len(continuous_features) + len(binary_features),
    }
    joblib.dump(feature_info, folder / "feature_info.pkl")


def score_session(session_dict, model, scaler, threshold):
    """
    Score a single behavioral session for anomaly detection.

    Args:
        session_dict: Dictionary containing all 30 behavioral features
        model: Trained autoencoder model
        scaler: Fitted StandardScaler
        threshold: Anomaly detection threshold

    Returns:
        tuple: (reconstruction_error, is_anomaly, risk_score_percent)
    """
    # Extract features in correct order
    cont_vals = [session_dict[feat] for feat in continuous_features]
    bin_vals = [session_dict[feat] for feat in binary_features]

    # Scale continuous features
    scaled_cont = scaler.transform([cont_vals])

    # Combine all features
    full_input = np.hstack([scaled_cont, [bin_vals]])

    # Get reconstruction
    reconstructed = model.predict(full_input, verbose=0)

    # Calculate reconstruction error
    error = np.mean(np.square(full_input - reconstructed), axis=1)[0]

    # Determine if anomaly
    is_anomaly = 1 if error > threshold else 0

    # Calculate risk score percentage
    risk_score_percent = min(100, (error / threshold) * 100)

    return error, is_anomaly, risk_score_percent


def generate_sessions(n_normal: int = 10000, n_attack: int = 1000) -> tuple[list[list[int]], list[list[int]]]:
    """Part 1 of the LSTM notebook (np.random, as it is seeded): normal and attack sessions.

    The notebook generated 10,000 normal and 500 + 500 attack sessions; ``n_attack`` is split
    the same way between its two attack patterns.
    """
    # --- A. Generate NORMAL Sessions ---
    normal_sessions = []
    for _ in range(n_normal):
        seq_len = np.random.randint(3, 8)
        session = [ACTIONS["LOGIN"]]
        for _ in range(seq_len):
            action_code = np.random.choice(
                [ACTIONS["VIEW_BALANCE"], ACTIONS["VIEW_TRANSACTIONS"], ACTIONS["TRANSFER_SMALL"], ACTIONS["LOGOUT"]],
                p=[0.4, 0.4, 0.1, 0.1],
            )
            session.append(action_code)
            if action_code == ACTIONS["LOGOUT"]:
                break
        normal_sessions.append(session)

    # --- B. Generate ATTACK Sessions (Account Takeover) ---
    attack_sessions = []
    # Attack Pattern 1: The "Quick Drain"
    for _ in range(n_attack // 2):
        session = [ACTIONS["LOGIN"], ACTIONS["ADD_RECIPIENT"], ACTIONS["TRANSFER_LARGE"], ACTIONS["LOGOUT"]]
        attack_sessions.append(session)
    # Attack Pattern 2: The "Password Reset"
    for _ in range(n_attack - n_attack // 2):
        session = [ACTIONS["LOGIN"], ACTIONS["CHANGE_PASSWORD"], ACTIONS["TRANSFER_LARGE"], ACTIONS["LOGOUT"]]
        attack_sessions.append(session)
    return normal_sessions, attack_sessions


def train_notebook_lstm(epochs: int = 15, seed: int = 0, n_normal: int = 10000, n_attack: int = 1000) -> Any:
    """Parts 1-4 of the LSTM notebook; ``seed`` seeds np.random (the generation) and Keras 2."""
    keras2.utils.set_random_seed(seed)  # also np.random.seed(seed) and random.seed(seed)
    normal_sessions, attack_sessions = generate_sessions(n_normal, n_attack)

    # PART 2: PREPROCESSING
    X_normal = pad_sequences(normal_sessions, maxlen=MAX_SEQ_LENGTH, padding="post")  # noqa: N806
    X_attack = pad_sequences(attack_sessions, maxlen=MAX_SEQ_LENGTH, padding="post")  # noqa: N806
    y_normal = np.zeros(len(X_normal))
    y_attack = np.ones(len(X_attack))
    X = np.concatenate([X_normal, X_attack])  # noqa: N806
    y = np.concatenate([y_normal, y_attack])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)  # noqa: N806

    # PART 3: BUILD THE LSTM MODEL
    model = Sequential()
    model.add(Embedding(input_dim=9, output_dim=32, input_length=MAX_SEQ_LENGTH))
    model.add(LSTM(64, return_sequences=False))
    model.add(Dropout(0.2))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])

    # PART 4: TRAIN
    model.fit(
        X_train,
        y_train,
        epochs=epochs,
        batch_size=32,
        validation_data=(X_test, y_test),
        verbose=0,
    )
    return model


def save_notebook_lstm(folder: Path | str, model: Any) -> None:
    """The LSTM notebook's ``model.save("model_lstm.h5")``, writing into ``folder``."""
    with warnings.catch_warnings():  # tf-keras: "HDF5 is legacy", which the notebook did not see
        warnings.simplefilter("ignore")
        model.save(str(Path(folder) / "model_lstm.h5"))


def predict_session_risk(action_sequence, model):
    """Part 5 of the LSTM notebook, verbatim but for ``model`` passed in instead of a global."""
    # 1. Convert text actions to numbers
    seq_nums = [ACTIONS.get(a, 0) for a in action_sequence]
    # 2. Pad sequence to length 10
    padded_seq = pad_sequences([seq_nums], maxlen=MAX_SEQ_LENGTH, padding="post")
    # 3. Predict Probability
    risk_score = model.predict(padded_seq, verbose=0)[0][0]
    return risk_score
