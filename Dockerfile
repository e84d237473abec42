# One image for both roles: `web` (daphne) and `worker` (celery). See compose.yaml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    FUSION_VAR_DIR=/app/var

WORKDIR /app
COPY pyproject.toml README.md ./
COPY fusion ./fusion
COPY workbench ./workbench
RUN pip install .
# .dockerignore keeps var/ (generated secrets, the SQLite database), .env, .venv and .git out.
COPY . .
# collectstatic needs settings to import; the build-time secrets are throwaway values.
RUN SECRET_KEY=build DATABASE_URL=sqlite:////tmp/build.db \
    FUSION_ENCRYPTION_KEYS=Z2VuZXJhdGVkLWZvci10ZXN0cy1vbmx5LTMyYnl0ZXM= \
    python manage.py collectstatic --noinput -v 0 \
 && useradd --create-home --uid 1000 fusion && mkdir -p /app/var && chown -R fusion /app/var
USER fusion

EXPOSE 8000
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "--proxy-headers", "workbench.asgi:application"]
