"""A simulated imaging session as an optical-physiology NWB file.

:func:`calcium_to_nwbfile` turns a :class:`nwb_lfads.synthetic_calcium.CalciumSession` into a
``pynwb.NWBFile`` laid out as a two-photon session on DANDI is: a ``Device``, an
``OpticalChannel`` and an ``ImagingPlane``; ``processing/ophys`` with ``ImageSegmentation``
(a ``PlaneSegmentation`` ``PlaneSegmentation`` of one image mask per ROI, a small Gaussian
blob in a 64 x 64 field of view) and ``DfOverF`` holding the ``RoiResponseSeries``
``dff`` (float32 [F, N], unit ``dF/F``, ``rate`` = frame rate, ``starting_time`` 0); a
trials table (``start_time``, ``stop_time``, ``move_onset_time`` = start + 0.25 s,
``condition_id``, optionally ``split``); and ``processing/ground_truth`` with ``dff`` (the
noise-free dF/F), ``rates`` (true rates averaged per frame, Hz) and ``latents``, all
``TimeSeries`` on the frames' time base, columns in ROI order.
"""

from __future__ import annotations

import datetime

import numpy as np

from .simulated import MOVE_ONSET_DELAY, SESSION_START

FIELD_OF_VIEW = 64  # pixels per side of the simulated imaging plane
OPHYS_MODULE = "ophys"
DFF_SERIES = "dff"


def _compressed(data: np.ndarray, rows: int = 900):
    from hdmf.backends.hdf5 import H5DataIO

    from .filters import GZIP_LEVEL

    return H5DataIO(
        np.asarray(data, dtype=np.float32),
        compression="gzip",
        compression_opts=GZIP_LEVEL,
        chunks=(min(rows, data.shape[0]), data.shape[1]),
    )


def roi_masks(rng: np.random.Generator, n_rois: int, size: int = FIELD_OF_VIEW) -> np.ndarray:
    """One Gaussian blob per ROI (sd 1.5 px, at a random centre), float32 [N, size, size] in [0, 1]."""
    centres = rng.uniform(4, size - 4, size=(n_rois, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    d2 = (yy[None] - centres[:, 0, None, None]) ** 2 + (xx[None] - centres[:, 1, None, None]) ** 2
    masks = np.exp(-d2 / (2 * 1.5**2))
    masks[masks < 0.05] = 0.0
    return masks.astype(np.float32)


def calcium_to_nwbfile(session, *, session_index: int = 0, identifier: str | None = None):
    """Build the NWB file of one simulated imaging session (write it with
    :func:`nwb_lfads.io.simulated.write_nwbfile`)."""
    from hdmf.common import VectorData
    from pynwb import NWBFile, TimeSeries
    from pynwb.epoch import TimeIntervals
    from pynwb.file import Subject
    from pynwb.ophys import DfOverF, ImageSegmentation, OpticalChannel, RoiResponseSeries

    n_frames, n_rois = session.dff.shape
    rate = session.frame_rate
    nwbfile = NWBFile(
        session_description=session.description,
        identifier=identifier or f"nwb-lfads-sim-calcium-session{session_index}",
        session_start_time=SESSION_START + datetime.timedelta(days=session_index),
        session_id=f"sim-calcium-{session_index}",
        experimenter=["Simulator, Synthetic"],
        institution="nwb-lfads synthetic data",
        lab="nwb-lfads",
        experiment_description=(
            "Simulated two-photon imaging of a delayed-reach-like task: each trial starts from "
            "one of a set of latent initial conditions; spikes are Poisson draws from known "
            "rates and drive a calcium indicator. Ground truth in processing/ground_truth."
        ),
        keywords=["LFADS", "calcium imaging", "synthetic data", "ground truth"],
        subject=Subject(
            subject_id="sim01",
            species="Mus musculus",
            age="P90D",
            sex="M",
            description="A simulated subject; the data are generated, not recorded.",
        ),
    )
    start = np.asarray(session.start_time, dtype=np.float64)
    columns = [
        VectorData(name="start_time", description="Start of the trial (s).", data=start),
        VectorData(
            name="stop_time",
            description="End of the trial (s).",
            data=start + session.trial_length,
        ),
        VectorData(
            name="move_onset_time",
            description=f"Movement onset (s): trial start + {MOVE_ONSET_DELAY} s.",
            data=start + MOVE_ONSET_DELAY,
        ),
        VectorData(
            name="condition_id",
            description="Index of the latent initial condition of the trial.",
            data=np.asarray(session.condition_id, dtype=np.int64),
        ),
    ]
    if session.split is not None:
        columns.append(
            VectorData(
                name="split",
                description="Neural Latents Benchmark split: 'train' or 'val'.",
                data=[str(v) for v in session.split],
            )
        )
    nwbfile.trials = TimeIntervals(
        name="trials",
        description=f"{start.size} trials of {session.trial_length:g} s.",
        columns=columns,
        id=np.arange(start.size),
    )

    device = nwbfile.create_device(
        name="Microscope",
        description="Simulated two-photon microscope.",
        manufacturer="nwb-lfads simulator",
    )
    channel = OpticalChannel(
        name="OpticalChannel", description="Green emission channel.", emission_lambda=510.0
    )
    plane = nwbfile.create_imaging_plane(
        name="ImagingPlane",
        optical_channel=channel,
        imaging_rate=rate,
        description="One simulated imaging plane.",
        device=device,
        excitation_lambda=920.0,
        indicator="GCaMP6s (simulated)",
        location="MOp",
        grid_spacing=[0.002, 0.002],
        grid_spacing_unit="meters",
    )
    ophys = nwbfile.create_processing_module(
        OPHYS_MODULE, "Optical physiology: ROI segmentation and dF/F traces."
    )
    segmentation = ImageSegmentation(name="ImageSegmentation")
    planes = segmentation.create_plane_segmentation(
        name="PlaneSegmentation",
        description="One simulated ROI per neuron: a Gaussian blob.",
        imaging_plane=plane,
    )
    rng = np.random.default_rng([session_index, 64])
    for mask in roi_masks(rng, n_rois):
        planes.add_roi(image_mask=mask)
    ophys.add(segmentation)
    rois = planes.create_roi_table_region(
        region=list(range(n_rois)), description="All ROIs of the plane segmentation."
    )
    dff = DfOverF(name="DfOverF")
    ophys.add(dff)  # before the series, so its ROI region shares an ancestor with the table
    dff.add_roi_response_series(
        RoiResponseSeries(
            name=DFF_SERIES,
            data=_compressed(session.dff),
            rois=rois,
            unit="dF/F",
            rate=rate,
            starting_time=0.0,
            description=(
                "dF/F of every ROI (n_frames, n_rois): noise-free dF/F plus Gaussian noise."
            ),
        )
    )

    truth = nwbfile.create_processing_module(
        "ground_truth", "True dF/F, rates and latent states of the simulation."
    )
    for name, data, unit, what in (
        ("dff", session.dff_clean, "dF/F", "Noise-free dF/F (n_frames, n_rois), ROI order."),
        (
            "rates",
            session.rates_hz,
            "Hz",
            "True firing rates averaged over each frame (n_frames, n_rois), ROI order.",
        ),
        (
            "latents",
            session.latents,
            "a.u.",
            "tanh of the chaotic RNN's state at each frame (n_frames, 50); 0 between trials.",
        ),
    ):
        truth.add(
            TimeSeries(
                name=name,
                data=_compressed(data),
                unit=unit,
                rate=rate,
                starting_time=0.0,
                description=what,
            )
        )
    return nwbfile
