// Package ids is the Kafka broker's side of message ids, which the log
// engine formats as "<epoch>-<position>" (engine.FormatID, ParseID): it
// spells the epoch, the topic's Kafka topic ID, which changes when the
// topic is deleted and recreated, and maps a record's offset o to its
// position o+1 and back.
//
// It imports the standard library alone; its fuzz targets add only the
// engine. Pure functions and values: safe for concurrent use.
package ids
