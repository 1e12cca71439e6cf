#!/bin/sh
# A sensor in a shell script: one reading every 10 s goes to iotsocket-client's stdin;
# each push the backend sends comes out of its stdout as one line.
set -eu
host=${IOT_HOST:-iot.example.com}
pin=${IOT_PIN:?the server pin: iotsocket-client --host HOST --insecure --print-pin}

while true; do
  echo "temp=$(( $(cat /sys/class/thermal/thermal_zone0/temp) / 1000 ))"
  sleep 10
done |
iotsocket-client --host "$host" --port 9000 --id 1234567890 --key-file /etc/iot/device.key \
                 --pin "$pin" |
while IFS= read -r command; do
  echo "backend says: $command"
done
