"""The two notebooks' pipelines, cell for cell, with Keras 2 (tf-keras) as the notebooks ran.

Used to produce the five files a bank that ran the notebooks has, and the notebooks' own
per-row functions (``score_session``, ``predict_session_risk``) to compare the job against.
Only training sizes and epochs are parameters, so tests stay quick.
"""

from __future__ import annotations

import os
from pathlib import Path

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

continuous_features = [
    "tap_duration", "swipe_velocity", "touch_pressure", "tap_interval_avg",
    "accel_variance", "gyro_variance", "battery_level", "brightness_level",
    "screen_on_time", "time_of_day_sin", "time_of_day_cos",
    "wifi_id_hash", "gps_latitude", "gps_longitude",
    "device_orientation", "touch_area", "touch_event_count", "app_usage_time",
]
binary_features = [
    "accel_variance_missing", "gyro_variance_missing", "charging_state",
    "wifi_info_missing", "gps_location_missing",
    "day_of_week_mon", "day_of_week_tue", "day_of_week_wed",
    "day_of_week_thu", "day_of_week_fri", "day_of_week_sat", "day_of_week_sun",
]
ACTIONS = {
    "LOGIN": 1, "VIEW_BALANCE": 2, "VIEW_TRANSACTIONS": 3, "TRANSFER_SMALL": 4,
    "TRANSFER_LARGE": 5, "CHANGE_PASSWORD": 6, "ADD_RECIPIENT": 7, "LOGOUT": 8,
}
MAX_SEQ_LENGTH = 10

SEQ1 = ["LOGIN", "VIEW_BALANCE", "VIEW_TRANSACTIONS", "LOGOUT"]
SEQ2 = ["LOGIN", "CHANGE_PASSWORD", "TRANSFER_LARGE"]
SEQ3 = ["LOGIN", "ADD_RECIPIENT", "TRANSFER_LARGE"]

anomalous_example = {
    "tap_duration": 0.09, "swipe_velocity": 0.2, "touch_pressure": 0.1, "tap_interval_avg": 0.05,
    "accel_variance": 0.95, "gyro_variance": 0.95, "battery_level": 0.05, "brightness_level": 0.1,
    "screen_on_time": 0.95, "time_of_day_sin": -1.0, "time_of_day_cos": 0.0, "wifi_id_hash": 0.0,
    "gps_latitude": 0.0, "gps_longitude": 0.0, "device_orientation": 0.95, "touch_area": 0.05,
    "touch_event_count": 0.95, "app_usage_time": 0.95, "accel_variance_missing": 1,
    "gyro_variance_missing": 1, "charging_state": 0, "wifi_info_missing": 1, "gps_location_missing": 1,
    "day_of_week_mon": 0, "day_of_week_tue": 0, "day_of_week_wed": 0, "day_of_week_thu": 0,
    "day_of_week_fri": 0, "day_of_week_sat": 0, "day_of_week_sun": 1,
}
normal_example = {
    "tap_duration": 0.2, "swipe_velocity": 0.75, "touch_pressure": 0.7, "tap_interval_avg": 0.3,
    "accel_variance": 0.3, "gyro_variance": 0.25, "battery_level": 0.6, "brightness_level": 0.7,
    "screen_on_time": 0.4, "time_of_day_sin": 0.5, "time_of_day_cos": 0.87, "wifi_id_hash": 0.8,
    "gps_latitude": 0.4, "gps_longitude": 0.6, "device_orientation": 0.5, "touch_area": 0.6,
    "touch_event_count": 0.4, "app_usage_time": 0.3, "accel_variance_missing": 0,
    "gyro_variance_missing": 0, "charging_state": 1, "wifi_info_missing": 0, "gps_location_missing": 0,
    "day_of_week_mon": 0, "day_of_week_tue": 0, "day_of_week_wed": 1, "day_of_week_thu": 0,
    "day_of_week_fri": 0, "day_of_week_sat": 0, "day_of_week_sun": 0,
}


def train_notebook_autoencoder(df: pd.DataFrame, epochs: int = 100):
    """Sections 3-6 of the autoencoder notebook; returns (autoencoder, scaler, threshold)."""
    df_processed = df.copy()
    df_processed[continuous_features] = df_processed[continuous_features].fillna(0)
    df_processed[binary_features] = df_processed[binary_features].fillna(0)
    scaler = StandardScaler()
    scaled_continuous = scaler.fit_transform(df_processed[continuous_features])
    X = np.hstack([scaled_continuous, df_processed[binary_features].values])
    X_train, X_test = train_test_split(X, test_size=0.2, random_state=42)

    input_dim = X.shape[1]
    input_layer = Input(shape=(input_dim,), name="input")
    encoded = Dense(32, activation="relu", name="encoder_1")(input_layer)
    encoded = Dense(16, activation="relu", name="encoder_2")(encoded)
    decoded = Dense(32, activation="relu", name="decoder_1")(encoded)
    output_layer = Dense(input_dim, activation="linear", name="output")(decoded)
    autoencoder = Model(inputs=input_layer, outputs=output_layer, name="behavioral_autoencoder")
    autoencoder.compile(optimizer="adam", loss="mse", metrics=["mae"])
    early_stopping = EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True, verbose=0)
    autoencoder.fit(X_train, X_train, epochs=epochs, batch_size=64, validation_split=0.2,
                    callbacks=[early_stopping], verbose=0)
    X_test_pred = autoencoder.predict(X_test, verbose=0)
    reconstruction_errors = np.mean(np.square(X_test - X_test_pred), axis=1)
    threshold = np.percentile(reconstruction_errors, 95)
    return autoencoder, scaler, threshold


def save_notebook_autoencoder_files(folder: Path | str, autoencoder, scaler, threshold) -> None:
    """Section 7 of the autoencoder notebook."""
    folder = Path(folder)
    autoencoder.save(str(folder / "autoencoder_model.h5"))
    joblib.dump(scaler, folder / "scaler.pkl")
    joblib.dump(threshold, folder / "threshold.pkl")
    feature_info = {
        "continuous_features": continuous_features,
        "binary_features": binary_features,
        "total_features": len(continuous_features) + len(binary_features),
    }
    joblib.dump(feature_info, folder / "feature_info.pkl")


def score_session(session_dict, model, scaler, threshold):
    """Verbatim from the autoencoder notebook."""
    cont_vals = [session_dict[feat] for feat in continuous_features]
    bin_vals = [session_dict[feat] for feat in binary_features]
    scaled_cont = scaler.transform([cont_vals])
    full_input = np.hstack([scaled_cont, [bin_vals]])
    reconstructed = model.predict(full_input, verbose=0)
    error = np.mean(np.square(full_input - reconstructed), axis=1)[0]
    is_anomaly = 1 if error > threshold else 0
    risk_score_percent = min(100, (error / threshold) * 100)
    return error, is_anomaly, risk_score_percent


def train_notebook_lstm(epochs: int = 15, seed: int = 0, n_normal: int = 10000, n_attack: int = 1000):
    """Parts 1-4 of the LSTM notebook (its np.random generation, seeded here)."""
    np.random.seed(seed)
    keras2.utils.set_random_seed(seed)
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
    attack_sessions = []
    for _ in range(n_attack // 2):
        attack_sessions.append([ACTIONS["LOGIN"], ACTIONS["ADD_RECIPIENT"], ACTIONS["TRANSFER_LARGE"], ACTIONS["LOGOUT"]])
    for _ in range(n_attack - n_attack // 2):
        attack_sessions.append(
            [ACTIONS["LOGIN"], ACTIONS["CHANGE_PASSWORD"], ACTIONS["TRANSFER_LARGE"], ACTIONS["LOGOUT"]]
        )
    X_normal = pad_sequences(normal_sessions, maxlen=MAX_SEQ_LENGTH, padding="post")
    X_attack = pad_sequences(attack_sessions, maxlen=MAX_SEQ_LENGTH, padding="post")
    X = np.concatenate([X_normal, X_attack])
    y = np.concatenate([np.zeros(len(X_normal)), np.ones(len(X_attack))])
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=42)
    model = Sequential()
    model.add(Embedding(input_dim=9, output_dim=32, input_length=MAX_SEQ_LENGTH))
    model.add(LSTM(64, return_sequences=False))
    model.add(Dropout(0.2))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(X_train, y_train, epochs=epochs, batch_size=32, validation_data=(X_test, y_test), verbose=0)
    return model


def save_notebook_lstm(folder: Path | str, model) -> None:
    model.save(str(Path(folder) / "model_lstm.h5"))


def predict_session_risk(action_sequence, model):
    """Verbatim from the LSTM notebook (the model passed in instead of a global)."""
    seq_nums = [ACTIONS.get(a, 0) for a in action_sequence]
    padded_seq = pad_sequences([seq_nums], maxlen=MAX_SEQ_LENGTH, padding="post")
    risk_score = model.predict(padded_seq, verbose=0)[0][0]
    return risk_score
