# Sourced by scripts/kafka-compat.sh and scripts/bench.sh: installs the Kafka
# clients they drive if missing. kcat from Debian (apt-get, as root);
# confluent-kafka and kafka-python, pinned, from PyPI into a virtualenv under
# target/ (its python is "$kafka_venv/bin/python").
kafka_venv="$PWD/target/kafka-compat-venv"
confluent_version=2.16.1
kafka_python_version=3.0.12

ensure_kcat() {
  command -v kcat > /dev/null && return 0
  echo "== installing kcat (Debian)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "kcat is missing and this is not root: run 'sudo apt-get install -y kcat' first" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat > /dev/null ||
    { apt-get update -q > /dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q kcat > /dev/null; }
}

ensure_python_clients() {
  "$kafka_venv/bin/python" -c "import confluent_kafka, kafka; assert confluent_kafka.version() == '$confluent_version'" 2> /dev/null && return 0
  echo "== installing confluent-kafka $confluent_version and kafka-python $kafka_python_version (PyPI) into $kafka_venv"
  python3 -m venv "$kafka_venv"
  "$kafka_venv/bin/pip" install -q --disable-pip-version-check \
    "confluent-kafka==$confluent_version" "kafka-python==$kafka_python_version"
}
